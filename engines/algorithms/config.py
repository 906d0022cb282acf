"""An algorithm's own settings and secrets, declared beside it, read from the environment by name.

An algorithm (built in, or from an outside package named under ``modules:``)
declares a ``Config``, a pydantic-settings model whose fields are read from
environment variables (and ``.env``) named by its ``env_prefix``::

    class WeatherConfig(AlgorithmConfig):
        model_config = SettingsConfigDict(env_prefix="WEATHER_")
        api_url: str = "https://api.weather.example"
        api_key: SecretStr | None = None        # WEATHER_API_KEY

The registry entry may set plain fields (``config: {api_url: …}``) but never a
secret: a ``SecretStr`` field is only ever read from the environment. The
environment wins over the registry file. The gateway reads the config once and
hands it to the algorithm's replicas with the deployment (``self.config``), so
no core file changes for a new algorithm and nothing rides each call.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engines.algorithms.validation import describe
from engines.errors import NotConfigured, RegistryError


class AlgorithmConfig(BaseSettings):
    """Base of every algorithm's ``Config``; with no fields, an algorithm that needs none."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True, frozen=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The environment wins over the registry file's ``config:`` (passed as init values)."""
        return env_settings, dotenv_settings, init_settings, file_secret_settings

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from."""
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [name for name, info in cls.model_fields.items()
                if info.annotation is SecretStr or SecretStr in getattr(info.annotation, "__args__", ())]

    @classmethod
    def load(cls, overrides: dict[str, Any], where: str) -> AlgorithmConfig:
        """The config from the environment over the entry's ``config:``; a wrong value names the variable."""
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            known = ", ".join(cls.model_fields) or "none"
            raise RegistryError(f"{where}: config: unknown field(s) {unknown} (this algorithm has: {known})")
        secrets = sorted(set(overrides) & set(cls.secret_fields()))
        if secrets:
            raise RegistryError(f"{where}: config.{secrets[0]}: a secret is never written in the registry file; "
                                f"set {cls.env_name(secrets[0])} in the environment instead")
        try:
            return cls(**overrides)
        except ValidationError as exc:
            problems = [f"{cls.env_name(str(e['loc'][0]))}: {p.split(': ', 1)[-1]}" if e["loc"] else p
                        for e, p in zip(exc.errors(include_url=False), describe(exc.errors(include_url=False)),
                                        strict=True)]
            raise RegistryError(f"{where}: config: " + "; ".join(problems)) from None

    def require(self, field: str, owner: str) -> Any:
        """A field's value (a secret revealed), or NotConfigured naming the variable to set."""
        value = getattr(self, field)
        if value is None or value == "":
            raise NotConfigured(f"{owner}: {self.env_name(field)} is not set on the server")
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def revealed(self) -> dict[str, Any]:
        """Every value, secrets included: only ever hashed (a deployment's fingerprint), never shown."""
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in self}

    def secret_values(self) -> list[str]:
        """Every secret's value, so errors and logs can be scrubbed of them."""
        values = (getattr(self, name) for name in self.secret_fields())
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and v.get_secret_value()]
