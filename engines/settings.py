"""Configuration by environment (and ``.env``), one typed object for all layers.

Names follow the seed Ray Service (``REDIS_URL``, ``SERVICE_HOST`` …) so an
existing deployment's environment keeps working. ``.env.example`` lists every
setting with its default. An algorithm's own settings (API keys, endpoints) are
not here: each declares them in its ``Config`` (``engines.AlgorithmConfig``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from platformdirs import user_data_dir
from pydantic import BeforeValidator, Field, HttpUrl, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Empty means unset: ``cp .env.example .env`` must not turn ``DATA_DIR=`` into "." or
    # ``MCP_AUTH_TOKEN=`` into an empty token.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    # gateway
    service_host: str = Field("127.0.0.1", description="address the HTTP/SSE gateway binds to")
    service_port: int = Field(8000, ge=1, le=65535)
    mcp_auth_token: SecretStr | None = Field(
        None, description="when set, /mcp, /sse and the REST API require this bearer token"
    )
    max_request_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="larger HTTP bodies get 413")
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                         BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)] = Field(
        "INFO", description="also the replicas' level; DEBUG adds Serve's line per request")

    # logs and metrics (see engines.logs, engines.metrics)
    service_name: str = Field("algo-mcp", pattern=r"^[A-Za-z0-9._-]+$",
                              description="names the log files (<name>.log, <name>_debug.log) and the service "
                                          "registered upstream")
    log_dir: Path | None = Field(None, description="where the service and debug logs go (default DATA_DIR/logs)")
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line, for shippers")
    log_max_bytes: int = Field(50 * 1024 * 1024, ge=1024, description="a log file is rotated past this size "
                                                                       "(and at midnight)")
    log_retention_days: int = Field(14, ge=1, description="rotated (gzip-compressed) logs are kept this many days")
    debug_log_interval_s: float = Field(60, gt=0, description="how often the debug log gets a line of queues, "
                                                                "concurrency, replica states and resource use")

    # registration with an upstream service registry, under SERVICE_NAME (engines.registration)
    registry_url: HttpUrl | None = Field(
        None, description="an upstream service registry (http or https) to register with and heartbeat; unset: none")
    registry_heartbeat_s: float = Field(10, ge=0.1, le=3600, description="seconds between heartbeats to REGISTRY_URL")
    registry_token: SecretStr | None = Field(None, description="sent to REGISTRY_URL as a bearer token")

    # registry and compute
    algo_mcp_registry: Path = Field(
        Path("algorithms.yaml"), description="the registry file of algorithms to serve"
    )
    ray_address: str | None = Field(None, description="Ray cluster to use; unset starts a local one")
    default_max_concurrency: int = Field(8, ge=1)
    ray_serve_throughput_optimized: bool = Field(
        True, description="Serve's low-latency request path (about 2.5x faster handle calls)"
    )
    local_cluster_linger_s: float = Field(
        300, ge=0, description="the local Ray and bundled Redis outlive the last gateway using them by this much")
    start_wait_s: float = Field(
        40, ge=0, le=55, description="how long a call waits for its algorithm to start before 'starting, retry'")

    # Redis and heartbeats (the seed's names)
    redis_url: str | None = None
    heartbeat_interval_seconds: float = Field(10, gt=0)
    heartbeat_ttl_seconds: float = Field(30, gt=0)

    # long jobs
    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("algo-mcp")),
                           description="embedded Redis data (and the local object store) live here")
    task_key_prefix: str = Field("algo_mcp", description="Redis key prefix; the seed used ray_service")
    task_ttl_seconds: int = Field(7 * 24 * 3600, ge=1, description="finished tasks expire after this")
    task_workers: int = Field(1, ge=1, description="task worker replicas")
    task_worker_concurrency: int = Field(256, ge=1, description="tasks one worker runs at a time")
    task_max_attempts: int = Field(3, ge=1, description="runs of a task whose worker or replica died, before it fails")
    task_visibility_timeout_seconds: float = Field(30, gt=0, description="a silent worker's task is redelivered")
    sync_budget_s: float = Field(20, gt=0, le=50, description="mode auto: answer inline if done within this")
    record_sync_calls: bool = Field(
        True, description="REST /invoke calls are recorded as task records, as the seed Ray Service did")
    callback_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for callback signatures")
    fetch_allowlist: str | None = Field(None, description="hosts, IPs or CIDRs outbound fetches may reach")

    # actors (stateful, one activation per id; see engines.actors)
    actor_lease_s: float = Field(10, gt=0, le=300, description="an actor host's hold on an actor, renewed as it runs")
    actor_max_active: int = Field(5000, ge=1, description="actors one host keeps active; past it, the LRU passivate")
    actor_state_inline_bytes: int = Field(
        1024 * 1024, ge=0, le=64 * 1024 * 1024,
        description="actor states up to this size are kept in Redis, larger ones in the object store")
    actor_host_state_budget_mb: float = Field(
        1024, gt=0, description="the active actors' state one host keeps in memory (as last written); past it "
                                "the least recently used are passivated")
    actor_call_timeout_s: float = Field(50, gt=0, le=600, description="an actor call, host restarts included")

    # pipelines (Kafka → algorithm → Kafka; see engines.streams)
    kafka_bootstrap_servers: str | None = Field(
        None, description="the default broker of pipelines that name none (host:port[,host:port…])")
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1000, le=300_000, description="a consumer silent this long leaves its group")
    pipeline_consumer_cpus: float = Field(
        0, ge=0, description="the CPUs Ray reserves for each pipeline consumer (0: they wait on the broker and the "
                             "algorithm, whose own CPUs are reserved; a full cluster must not keep one from starting)")

    # outputs: a local folder by default, S3-compatible (AWS, Aliyun OSS, MinIO) when S3_BUCKET is set
    object_store_dir: Path | None = Field(None, description="the local store's folder (default DATA_DIR/objects)")
    public_base_url: str | None = Field(None, description="how callers reach this gateway, for local links")
    object_url_secret: SecretStr | None = Field(None, description="signs local links (default: kept in DATA_DIR)")
    output_url_expires_seconds: int = Field(24 * 3600, ge=1, le=7 * 24 * 3600)
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
