"""An algorithm's own settings and secrets: declared beside it, read from the environment by name,
never written in the registry file, and handed to its replicas with the deployment."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from engines.algorithms.registry import Registry
from engines.errors import NotConfigured, RegistryError
from engines.serving.deploy import AlgorithmApp
from engines.settings import Settings
from tests.conftest import WEATHER_ENTRY, WEATHER_KEY, Running
from tests.mcp_clients import http_session
from tests.weather_plugin import Weather, WeatherInput


def load(tmp_path: Path, **entry: object) -> Registry:
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump({"modules": ["tests.weather_plugin"], "algorithms": [{**WEATHER_ENTRY, **entry}]}))
    return Registry.load(path)


@pytest.fixture
def weather_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("WEATHER_API_KEY", "k-123")
    monkeypatch.delenv("WEATHER_UNITS", raising=False)
    return monkeypatch


def test_a_plugin_reads_plain_settings_from_the_registry_and_its_secret_from_the_environment(
        tmp_path: Path, weather_env: pytest.MonkeyPatch):
    config = load(tmp_path).get("test-weather").config
    assert config.units == "imperial" and config.api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(config) and "k-123" not in str(config.model_dump(mode="json"))


def test_the_environment_wins_over_the_registry_file(tmp_path: Path, weather_env: pytest.MonkeyPatch):
    weather_env.setenv("WEATHER_UNITS", "metric")
    assert load(tmp_path).get("test-weather").config.units == "metric"


def test_a_secret_written_in_the_registry_file_is_refused_naming_its_variable(tmp_path: Path):
    with pytest.raises(RegistryError, match=r"entry 1 \(test-weather\): config\.api_key: a secret is never written "
                                            r"in the registry file; set WEATHER_API_KEY in the environment instead"):
        load(tmp_path, config={"api_key": "oops"})


def test_unknown_config_fields_and_bad_values_name_the_field_or_variable(tmp_path: Path,
                                                                         weather_env: pytest.MonkeyPatch):
    with pytest.raises(RegistryError, match=r"config: unknown field\(s\) \['colour'\] \(this algorithm has: "
                                            r"units, api_key\)"):
        load(tmp_path, config={"colour": "blue"})
    weather_env.setenv("WEATHER_UNITS", "kelvin")
    with pytest.raises(RegistryError,
                       match=r"config: WEATHER_UNITS: must be one of 'metric' or 'imperial' \(got 'kelvin'\)"):
        load(tmp_path)


async def test_an_unset_secret_is_a_not_configured_error_naming_its_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WEATHER_API_KEY", raising=False)
    with pytest.raises(NotConfigured, match=r"Weather: WEATHER_API_KEY is not set on the server"):
        await Weather().predict(WeatherInput(city="Oslo"))


def test_a_rotated_secret_changes_the_deployment_so_replicas_get_the_new_one(tmp_path: Path,
                                                                            weather_env: pytest.MonkeyPatch):
    before = AlgorithmApp(load(tmp_path).get("test-weather"), Settings(_env_file=None)).fingerprint()
    weather_env.setenv("WEATHER_API_KEY", "k-456")
    after = AlgorithmApp(load(tmp_path).get("test-weather"), Settings(_env_file=None)).fingerprint()
    assert before != after and "k-456" not in after


async def test_the_deployed_replica_gets_its_config_and_never_shows_the_key(server: Running):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool("test-weather", {"city": "Lisbon"})
    assert not result.is_error, result.content
    assert result.structured_content == {"city": "Lisbon", "units": "imperial",
                                         "key_sha256": hashlib.sha256(WEATHER_KEY.encode()).hexdigest()}
    assert WEATHER_KEY not in result.content[0].text
