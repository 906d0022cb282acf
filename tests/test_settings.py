"""``.env.example`` is the list of settings (the core's, and the built-in algorithms' own): every one,
with its default, and copying it changes nothing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from engines.algorithms.registry import Registry
from engines.settings import Settings
from tests.conftest import ROOT

EXAMPLE = ROOT / ".env.example"
CONFIGS = [entry.cls.Config for entry in Registry.load(ROOT / "algorithms.yaml")]


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields} | {
        config.env_name(field) for config in CONFIGS for field in config.model_fields}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the test run's own environment."""
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)


def test_the_example_lists_every_setting_and_nothing_else():
    listed = re.findall(r"^([A-Z][A-Z0-9_]*)=", EXAMPLE.read_text(), re.MULTILINE)
    assert len(listed) == len(set(listed)), "a setting is listed twice"
    assert set(listed) == setting_names()


def test_copying_the_example_to_dot_env_gives_the_defaults(clean_env: None, tmp_path: Path):
    """Its empty values (``DATA_DIR=``, ``MCP_AUTH_TOKEN=``) mean unset, not "." or an empty token."""
    shutil.copy(EXAMPLE, tmp_path / ".env")
    copied, defaults = Settings(_env_file=tmp_path / ".env"), Settings(_env_file=None)
    assert copied.model_dump() == defaults.model_dump()
    assert copied.mcp_auth_token is None and copied.redis_url is None
    for config in CONFIGS:
        assert config(_env_file=tmp_path / ".env").model_dump() == config(_env_file=None).model_dump()


def test_an_empty_variable_means_unset(clean_env: None, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATA_DIR", "")
    monkeypatch.setenv("SERVICE_PORT", "")
    settings = Settings(_env_file=None)
    assert settings.data_dir != Path(".") and settings.service_port == 8000
