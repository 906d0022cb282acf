"""An algorithm from an outside package, as a team would ship one (``modules: [tests.weather_plugin]``).

It declares its own settings and secret in its ``Config``; nothing in algo-mcp's
core names them, and the registry file may set the plain ones but never the key.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from engines import Algorithm, AlgorithmConfig


class WeatherConfig(AlgorithmConfig):
    model_config = SettingsConfigDict(env_prefix="WEATHER_")

    units: Literal["metric", "imperial"] = "metric"
    api_key: SecretStr | None = Field(None, description="the weather service's key (WEATHER_API_KEY)")


class WeatherInput(BaseModel):
    city: str = Field(min_length=1, max_length=100, description="a city name", examples=["Lisbon"])


class WeatherOutput(BaseModel):
    city: str
    units: str = Field(description="the units the forecast would be in")
    key_sha256: str | None = Field(description="a digest of the key the replica holds (never the key)")


class Weather(Algorithm):
    """Say which settings the replica got: its units and a digest of its key."""

    Input = WeatherInput
    Output = WeatherOutput
    Config = WeatherConfig
    config: WeatherConfig

    async def predict(self, inp: WeatherInput) -> WeatherOutput:
        key = self.config.require("api_key", "Weather")
        return WeatherOutput(city=inp.city, units=self.config.units,
                             key_sha256=hashlib.sha256(key.encode()).hexdigest())
