"""A pipeline, declared once: topics, the algorithm between them, how messages map, its limits.

The same model is read from the registry file (``pipelines:``), from MCP and
REST callers, and from Redis (where every running pipeline is kept), so a bad
field is refused the same way everywhere, naming the field and the rule.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engines.algorithms.validation import describe
from engines.errors import NotConfigured, ValidationFailed

_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,127}$"
#: where an output field may come from: the result, the input message, or the message's coordinates
OUTPUT_SOURCES = ("result", "input", "key", "offset", "partition", "topic", "timestamp")


class Broker(BaseModel):
    """How to reach the Kafka cluster, with the client security settings the seed used; secrets are
    named by environment variable, never written in a spec (a spec is kept in Redis and shown)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field(min_length=1, max_length=2000, description="host:port[,host:port…]")
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password_env: str | None = Field(None, pattern=_ENV_NAME, description="the variable holding the password")
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    ssl_key_password_env: str | None = Field(None, pattern=_ENV_NAME)

    @model_validator(mode="after")
    def _check(self) -> Broker:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password_env):
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_mechanism, sasl_username "
                             "and sasl_password_env")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password_env):
            raise ValueError(f"sasl_* settings need a SASL security_protocol (got {self.security_protocol})")
        return self

    def secret_names(self) -> list[str]:
        return [n for n in (self.sasl_password_env, self.ssl_key_password_env) if n]

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings; a named secret missing from the environment is NotConfigured."""
        config: dict[str, Any] = {"bootstrap.servers": self.bootstrap_servers,
                                  "security.protocol": self.security_protocol}
        optional = {"sasl.mechanism": self.sasl_mechanism, "sasl.username": self.sasl_username,
                    "ssl.ca.location": self.ssl_ca_location,
                    "ssl.certificate.location": self.ssl_certificate_location,
                    "ssl.key.location": self.ssl_key_location}
        config |= {k: v for k, v in optional.items() if v is not None}
        for key, env in (("sasl.password", self.sasl_password_env), ("ssl.key.password", self.ssl_key_password_env)):
            if env is None:
                continue
            if not os.environ.get(env):
                raise NotConfigured(f"broker: the environment variable {env} (its {key}) is not set")
            config[key] = os.environ[env]
        return config


class Scaling(BaseModel):
    """Consumers grow with lag, up to the partition count, and shrink when it drains."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_consumers: int = Field(1, ge=1, le=256)
    max_consumers: int = Field(4, ge=1, le=256, description="capped by the input topic's partitions")
    lag_per_consumer: int = Field(5000, ge=1, description="lag one consumer is expected to carry before another starts")
    scale_down_after_s: float = Field(30, ge=0, le=3600, description="lag below target this long removes one")

    @model_validator(mode="after")
    def _check(self) -> Scaling:
        if self.max_consumers < self.min_consumers:
            raise ValueError(f"max_consumers ({self.max_consumers}) must be >= min_consumers ({self.min_consumers})")
        return self


class PipelineSpec(BaseModel):
    """Input topic → registered algorithm → output topic, at least once, in order per partition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="the pipeline's name",
                      examples=["reviews-vec"])
    input_topic: str = Field(pattern=_TOPIC, description="the topic to read (it must exist)", examples=["reviews"])
    algorithm: str = Field(min_length=1, max_length=64, description="a registered algorithm's name",
                           examples=["text-embedding"])
    output_topic: str = Field(pattern=_TOPIC, description="where results go (created if missing)",
                              examples=["reviews-vec"])
    group: str | None = Field(None, min_length=1, max_length=255,
                               description="consumer group (default algo-mcp.<name>)")
    input_map: dict[str, str] | None = Field(
        None, description="algorithm input field → dotted path in the message (default: the message is the input)")
    output_map: dict[str, str] | None = Field(
        None, description="output field → source: result[.path], input[.path], key, offset, partition, topic, "
                          "timestamp (default: key, partition, offset and result)")
    batch_size: int = Field(256, ge=1, le=10_000, description="messages per algorithm call")
    batch_wait_ms: int = Field(10, ge=0, le=10_000, description="how long a consumer waits to fill a batch")
    # high: each pause drops what the client had fetched ahead, and it is fetched again on resume
    max_in_flight: int = Field(20_000, ge=1, le=1_000_000,
                               description="messages fetched but not yet committed, per consumer, before it pauses")
    dead_letter_topic: str | None = Field(None, pattern=_TOPIC,
                                          description="rejected and non-JSON messages go here, with the error")
    broker: Broker | None = Field(None, description="default: KAFKA_BOOTSTRAP_SERVERS")
    scaling: Scaling = Field(Scaling(), description="how many consumers, growing with lag")

    @model_validator(mode="after")
    def _check(self) -> PipelineSpec:
        if self.output_topic == self.input_topic:
            raise ValueError(f"output_topic: must differ from input_topic ({self.input_topic!r}), or every "
                             "output would be read again")
        for field, source in (self.output_map or {}).items():
            root = source.split(".", 1)[0]
            if root not in OUTPUT_SOURCES:
                raise ValueError(f"output_map.{field}: {source!r} must start with one of {', '.join(OUTPUT_SOURCES)}")
        return self

    def unknown_inputs(self, fields: Collection[str]) -> list[str]:
        """``input_map`` fields the algorithm's input (``fields``) does not have, as ``field: rule`` lines."""
        return [f"input_map.{f}: {self.algorithm}'s input has no field {f!r} (it has {', '.join(fields)})"
                for f in self.input_map or {} if f not in fields]

    @property
    def consumer_group(self) -> str:
        return self.group or f"algo-mcp.{self.name}"

    def with_broker(self, bootstrap_servers: str | None) -> Self:
        """The spec with the gateway's default broker filled in (NotConfigured when there is none)."""
        if self.broker is not None:
            return self
        if not bootstrap_servers:
            raise NotConfigured(f"pipeline {self.name}: broker: no bootstrap servers (set KAFKA_BOOTSTRAP_SERVERS "
                                "or the pipeline's broker.bootstrap_servers)")
        return self.model_copy(update={"broker": Broker(bootstrap_servers=bootstrap_servers)})


S = TypeVar("S", bound=PipelineSpec)


def parse_pipeline(data: Any, where: str = "pipeline", model: type[S] = PipelineSpec) -> S:  # type: ignore[assignment]
    """A checked spec (a ``model``), or ValidationFailed naming each field and rule (prefixed by ``where``)."""
    if not isinstance(data, dict):
        raise ValidationFailed([f"{where}: must be an object of fields (got {type(data).__name__})"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed([f"{where}: {p}" for p in describe(exc.errors(include_url=False))]) from None
