"""Real servers for the whole session: one local Ray with every algorithm deployed,
the gateway on a loopback port (with a bearer token), and fake external APIs.

Ray starts once (it takes ~15 s here), under the session gateway's local-cluster
keeper; everything else joins it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
import yaml

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from engines.serving.cluster import prepare_env
from engines.settings import Settings
from mcp_server.app import Gateway, build_gateway
from mcp_server.listen import listening_socket
from storage import EmbeddedRedis
from tests.fake_apis import NanoBananaAPI, SentimentAPI, serve_nanobanana_api, serve_sentiment_api
from tests.kafka_fixture import Broker, running_broker
from tests.polling import poll

prepare_env(Settings(_env_file=None))  # as the CLI does, before any test module imports Ray

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "test-token-6f1d"
SENTIMENT_KEY = "hf_secret_key_9c2e"
CALLBACK_SECRET = "callback-secret-51a0"
NANOBANANA_KEY = "nb_secret_key_77d3"
WEATHER_KEY = "weather_secret_key_3e8b"
#: an algorithm from a package that lives only in the tests, with a plain setting from the registry file
WEATHER_ENTRY = {"name": "test-weather", "kind": "local", "target": "tests.weather_plugin:Weather",
                 "num_cpus": 0.01, "config": {"units": "imperial"}}
#: an actor entry overriding its template's persistence (the template checkpoints every call)
LAZY_ENTRY = {"name": "TestLazy", "kind": "actor", "target": "tests.algorithms:LazyCounter",
              "checkpoint": "on_passivation"}
START_DEADLINE_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    gateway: Gateway
    url: str
    token: str
    ray_address: str
    env: dict[str, str]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def sentiment_api() -> Iterator[SentimentAPI]:
    with serve_sentiment_api(SENTIMENT_KEY) as api:
        yield api


@pytest.fixture(scope="session")
def nanobanana_api() -> Iterator[NanoBananaAPI]:
    with serve_nanobanana_api(NANOBANANA_KEY) as api:
        yield api


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bundled Redis-compatible server, the same one the gateway starts by default, over TCP."""
    with EmbeddedRedis(tmp_path_factory.mktemp("redis")) as redis:
        yield redis.url


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Kafka-protocol broker (Tansu, in memory): the session gateway's default for pipelines."""
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="session")
def gateway_socket() -> Iterator[socket.socket]:
    """The session gateway's port, held from the start: a port only picked as free could be taken
    (by a Serve replica's gRPC server, say) during the minute before the gateway listens."""
    with listening_socket("127.0.0.1", 0) as sock:
        yield sock


@pytest.fixture(scope="session")
def algorithm_env(sentiment_api: SentimentAPI, nanobanana_api: NanoBananaAPI) -> dict[str, str]:
    """The built-in algorithms' own settings (their ``Config``), read from the environment, as in
    production: put in this process's environment for the session, and passed to gateways it spawns."""
    env = {"SENTIMENT_API_URL": sentiment_api.url, "SENTIMENT_API_KEY": SENTIMENT_KEY,
           "NANOBANANA_BASE_URL": nanobanana_api.url, "NANOBANANA_API_KEY": NANOBANANA_KEY,
           "NANOBANANA_POLL_INTERVAL_SECONDS": "0.2", "WEATHER_API_KEY": WEATHER_KEY}
    os.environ.update(env)
    return env


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory, algorithm_env: dict[str, str], redis_url: str,
               gateway_socket: socket.socket, kafka: Broker) -> dict[str, str]:
    """The settings of the session's gateway, as environment variables other gateways can share.
    Its local cluster (Ray) stops as soon as the session's last gateway has gone."""
    return {"MCP_AUTH_TOKEN": TOKEN, "SERVICE_PORT": str(gateway_socket.getsockname()[1]),
            "REDIS_URL": redis_url, "DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "ACTOR_STATE_INLINE_BYTES": str(64 * 1024),  # tests/test_actors.py pushes a state past it
            "CALLBACK_SECRET": CALLBACK_SECRET, "FETCH_ALLOWLIST": "127.0.0.1",
            "TASK_VISIBILITY_TIMEOUT_SECONDS": "3",
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "KAFKA_SESSION_TIMEOUT_MS": "2000",
            "SYNC_BUDGET_S": "2", "LOCAL_CLUSTER_LINGER_S": "0",
            **algorithm_env}


def core_settings(env: dict[str, str], **overrides: object) -> Settings:
    """Settings from ``env`` (algorithm settings in it are read by each algorithm's Config instead)."""
    fields = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    return Settings(_env_file=None, **{**fields, **overrides})


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory, server_env: dict[str, str]) -> Settings:
    """The default registry plus the test algorithms (registered by decorator in tests.algorithms)."""
    registry = tmp_path_factory.mktemp("registry") / "algorithms.yaml"
    defaults = yaml.safe_load((ROOT / "algorithms.yaml").read_text())
    registry.write_text(yaml.safe_dump({"modules": ["tests.algorithms"], "algorithms": [*defaults, WEATHER_ENTRY,
                                                                                      LAZY_ENTRY]}))
    return core_settings(server_env, algo_mcp_registry=registry)


@pytest.fixture(scope="session")
async def server(settings: Settings, server_env: dict[str, str],
                 gateway_socket: socket.socket) -> AsyncIterator[Running]:
    """The gateway over HTTP, fully started: its lifespan starts the runtime (a local cluster, every
    deployment) in the background; the cluster stops once the session is over."""
    port = settings.service_port
    gateway = build_gateway(settings, base_url=f"http://127.0.0.1:{port}")
    config = uvicorn.Config(gateway.http_app(), host="127.0.0.1", port=port, log_level="warning")
    http = uvicorn.Server(config)
    task = asyncio.create_task(http.serve(sockets=[gateway_socket]))

    def started() -> bool:
        if task.done():
            task.result()
            raise RuntimeError("the gateway stopped during start-up")
        return http.started

    await poll(started, timeout_s=START_DEADLINE_S, interval_s=0.1, what="the gateway listening")
    await asyncio.wait_for(gateway.runtime.started(), START_DEADLINE_S)
    failed = {n: p for n, p in gateway.runtime.readiness.report().items() if p["status"] != "ready"}
    assert not failed, f"the session gateway did not start everything: {failed}"
    import ray

    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, **server_env, "RAY_ADDRESS": address, "PYTHONPATH": str(ROOT)}
    try:
        yield Running(gateway, f"http://127.0.0.1:{port}", TOKEN, address, env)
    finally:
        http.should_exit = True
        await task
