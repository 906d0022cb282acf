"""With ``REGISTRY_URL`` set, a gateway registers with an upstream service registry, heartbeats, registers
again when the registry restarts or fails for a while, and deregisters on a clean stop; the registry here
is a real HTTP server in a thread, stopped and started again on the same port with nothing remembered."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from pydantic import ValidationError

from engines.algorithms.registry import Registry
from engines.readiness import RAY, TASKS
from engines.registration import Registration, announcement
from engines.runtime import Runtime
from engines.settings import Settings
from mcp_server.app import build_gateway
from mcp_server.listen import listening_socket
from tests.conftest import free_port
from tests.polling import poll

PATH = "/v1/instances"
TOKEN = "registry-token-4b7e"
GATEWAY_URL = "http://gateway.example:8123"


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    authorization: str
    status: int


@dataclass
class UpstreamRegistry:
    """POST registers (an upsert by the body's id), PUT …/{id}/heartbeat, DELETE …/{id}; 404 for an id it
    does not know. ``assign_ids``: it answers a registration with an id of its own making."""

    assign_ids: bool = True
    port: int = 0
    fail_with: int | None = None  # answer every request with this status while set
    seen: list[Seen] = field(default_factory=list)
    instances: dict[str, dict] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> None:
        """Listen (on the same port as before, once started), remembering no instance."""
        self.instances = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def answered(self, method: str, status: int, after: int = 0) -> list[Seen]:
        return [s for s in self.seen[after:] if s.method == method and s.status == status]


def _handler(upstream: UpstreamRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _serve(self, route: Any) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = (upstream.fail_with, None) if upstream.fail_with else route(body)
            upstream.seen.append(Seen(self.command, self.path, body, self.headers.get("Authorization", ""), status))
            data = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            if data:
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def _instance(self) -> str | None:
            rest = self.path.removeprefix(f"{PATH}/").removesuffix("/heartbeat")
            return rest if rest in upstream.instances else None

        def do_POST(self) -> None:
            def register(body: dict) -> tuple[int, Any]:
                key = f"r-{body['id']}" if upstream.assign_ids else body["id"]
                upstream.instances[key] = body
                return 201, {"id": key} if upstream.assign_ids else None

            self._serve(register if self.path == PATH else lambda _: (404, None))

        def do_PUT(self) -> None:
            def beat(body: dict) -> tuple[int, Any]:
                key = self._instance()
                if key is None or not self.path.endswith("/heartbeat"):
                    return 404, {"error": "unknown instance"}
                upstream.instances[key]["health"] = body["health"]
                return 200, {}

            self._serve(beat)

        def do_DELETE(self) -> None:
            def deregister(_: Any) -> tuple[int, Any]:
                key = self._instance()
                if key is None:
                    return 404, None
                del upstream.instances[key]
                return 204, None

            self._serve(deregister)

    return Handler


@pytest.fixture
def upstream() -> Any:
    registry = UpstreamRegistry()
    registry.start()
    yield registry
    registry.stop()


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "algorithms.yaml"
    path.write_text(yaml.safe_dump({"modules": ["tests.algorithms"], "algorithms": []}))
    return path


def settings_for(url: str, tmp_path: Path, registry_file: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, registry_url=url, registry_heartbeat_s=0.2, service_name="algo-test",
                    registry_token=TOKEN, data_dir=tmp_path / "data", algo_mcp_registry=registry_file, **overrides)


@asynccontextmanager
async def registered(url: str, tmp_path: Path, registry_file: Path) -> AsyncIterator[Registration]:
    """A registration with a real registry and a real health function: a runtime's, not started (no Ray)."""
    settings = settings_for(url, tmp_path, registry_file, public_base_url=GATEWAY_URL)
    registry = Registry.load(registry_file)
    registration = Registration.of(settings, registry, Runtime(settings, registry).health)
    assert registration is not None
    registration.start()
    try:
        yield registration
    finally:
        await registration.stop()


def sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum("_RegistryRefused" in r.getMessage() for r in caplog.records if r.name == "engines.retries")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "engines.registration" and r.levelno >= logging.WARNING]


async def test_it_registers_its_name_address_version_tools_and_health(upstream: UpstreamRegistry, tmp_path: Path,
                                                                      registry_file: Path):
    async with registered(upstream.url, tmp_path, registry_file) as registration:
        [post] = await poll(lambda: upstream.answered("POST", 201), what="a registration")
    body = post.body
    assert post.authorization == f"Bearer {TOKEN}"
    assert body["id"] == registration.id and body["id"].startswith("algo-test-")
    assert (body["service"], body["base_url"]) == ("algo-test", GATEWAY_URL)
    assert body["version"] == metadata.version("algo-mcp")
    assert body["heartbeat_s"] == 0.2
    registry = Registry.load(registry_file)
    assert [t["name"] for t in body["tools"]] == sorted(registry.names())
    for tool in body["tools"]:
        assert tool["schema_sha256"] == sha256_json(registry.get(tool["name"]).cls.Input.model_json_schema())
    assert body["tools_sha256"] == sha256_json(body["tools"])
    assert body["health"]["status"] == "starting"
    assert set(body["health"]["phases"]) == {*registry.names(), TASKS, RAY, Runtime.WORKER, Runtime.ACTOR_HOSTS}


def test_the_tools_hash_is_stable_and_follows_the_schemas(tmp_path: Path, registry_file: Path):
    settings = settings_for("http://registry.example/v1", tmp_path, registry_file)
    everything = Registry.load(registry_file)
    fewer = Registry([entry for entry in everything if entry.name != "test-sleep"])
    assert announcement(settings, everything, None) == announcement(settings, Registry.load(registry_file), None)
    assert announcement(settings, fewer, None)["tools_sha256"] != announcement(settings, everything, None)[
        "tools_sha256"]
    assert announcement(settings, fewer, None)["base_url"] == "http://127.0.0.1:8000"  # SERVICE_HOST:SERVICE_PORT


async def test_heartbeats_carry_the_health_to_the_id_the_registry_gave(upstream: UpstreamRegistry, tmp_path: Path,
                                                                       registry_file: Path):
    async with registered(upstream.url, tmp_path, registry_file) as registration:
        beats = await poll(lambda: len(upstream.answered("PUT", 200)) >= 3 and upstream.answered("PUT", 200),
                           what="three heartbeats")
    for beat in beats:
        assert beat.path == f"{PATH}/r-{registration.id}/heartbeat"
        assert beat.authorization == f"Bearer {TOKEN}"
        assert beat.body["id"] == registration.id and beat.body["health"]["status"] == "starting"


async def test_a_registry_that_forgot_the_gateway_gets_it_registered_again(upstream: UpstreamRegistry,
                                                                            tmp_path: Path, registry_file: Path):
    async with registered(upstream.url, tmp_path, registry_file) as registration:
        await poll(lambda: upstream.answered("PUT", 200), what="a heartbeat")
        upstream.instances.clear()  # restarted between two heartbeats
        mark = len(upstream.seen)
        await poll(lambda: upstream.answered("PUT", 404, mark), what="a heartbeat refused")
        await poll(lambda: upstream.answered("POST", 201, mark), what="a registration again")
        await poll(lambda: upstream.answered("PUT", 200, mark), what="heartbeats again")
        assert set(upstream.instances) == {f"r-{registration.id}"}


async def test_a_restarted_registry_gets_the_gateway_registered_again(upstream: UpstreamRegistry, tmp_path: Path,
                                                                      registry_file: Path,
                                                                      caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    async with registered(upstream.url, tmp_path, registry_file) as registration:
        await poll(lambda: upstream.answered("PUT", 200), what="a heartbeat")
        upstream.stop()
        await poll(lambda: retries(caplog) >= 3, what="registering retried while the registry is down")
        [warning] = warnings(caplog)  # once per outage, not per retry
        assert "ConnectError" in warning
        mark = len(upstream.seen)
        upstream.start()  # the same port, nothing remembered
        await poll(lambda: upstream.answered("PUT", 200, mark), what="heartbeats to the new registry")
        assert upstream.answered("POST", 201, mark)[0].body["id"] == registration.id
        assert set(upstream.instances) == {f"r-{registration.id}"}
    assert any("registered again" in r.getMessage() for r in caplog.records if r.name == "engines.registration")


async def test_a_registry_failing_for_a_while_is_recovered_from(upstream: UpstreamRegistry, tmp_path: Path,
                                                                registry_file: Path,
                                                                caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    async with registered(upstream.url, tmp_path, registry_file):
        await poll(lambda: upstream.answered("PUT", 200), what="a heartbeat")
        upstream.fail_with = 500
        mark = len(upstream.seen)
        await poll(lambda: len(upstream.answered("POST", 500, mark)) >= 3, what="registrations refused")
        assert len(warnings(caplog)) == 1
        upstream.fail_with = None
        recovered = len(upstream.seen)
        await poll(lambda: upstream.answered("POST", 201, recovered), what="registered again")
        await poll(lambda: upstream.answered("PUT", 200, recovered), what="heartbeats again")


async def test_a_clean_stop_deregisters(tmp_path: Path, registry_file: Path):
    upstream = UpstreamRegistry(assign_ids=False)  # its answers carry no id: ours is used
    upstream.start()
    try:
        async with registered(upstream.url, tmp_path, registry_file) as registration:
            await poll(lambda: upstream.answered("PUT", 200), what="a heartbeat")
            assert upstream.answered("PUT", 200)[0].path == f"{PATH}/{registration.id}/heartbeat"
        [delete] = upstream.answered("DELETE", 204)
        assert delete.path == f"{PATH}/{registration.id}" and delete.authorization == f"Bearer {TOKEN}"
        assert upstream.instances == {}
    finally:
        upstream.stop()


@pytest.mark.parametrize("url", ["ftp://registry.example/v1", "registry.example/v1", "http://"])
def test_a_registry_url_must_be_an_http_url(url: str, tmp_path: Path):
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, registry_url=url)
    assert "registry_url" in str(caught.value) and "URL" in str(caught.value)


async def test_a_registry_that_is_not_there_is_retried_without_end(tmp_path: Path, registry_file: Path,
                                                                   caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    async with registered(f"http://127.0.0.1:{free_port()}/v1", tmp_path, registry_file) as registration:
        await poll(lambda: retries(caplog) >= 5, what="registering retried")
        assert registration._task is not None and not registration._task.done()
    assert len(warnings(caplog)) == 1  # and no deregistration: it never registered


async def test_a_gateway_registers_while_its_lifespan_runs(upstream: UpstreamRegistry, tmp_path: Path,
                                                           registry_file: Path):
    """Over HTTP, as ``algo-mcp serve`` runs it. Its Redis URL is unusable, so its start fails at once and
    no Ray is needed: it serves anyway, and the registry hears its health turn from starting to degraded."""
    settings = settings_for(upstream.url, tmp_path, registry_file, redis_url="nosuch://redis", ray_address="unused")
    with listening_socket("127.0.0.1", 0) as sock:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        gateway = build_gateway(settings, base_url=url)
        server = uvicorn.Server(uvicorn.Config(gateway.http_app(), log_level="warning", lifespan="on"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            [post] = await poll(lambda: upstream.answered("POST", 201), what="a registration")
            assert post.body["base_url"] == url and post.body["service"] == "algo-test"
            key = f"r-{post.body['id']}"
            await poll(lambda: upstream.instances.get(key, {}).get("health", {}).get("status") == "degraded",
                       what="a heartbeat saying degraded")
            async with httpx.AsyncClient() as http:
                health = (await http.get(f"{post.body['base_url']}/healthz")).json()
            assert health["status"] == "degraded" and "Redis URL" in health["phases"][TASKS]["message"]
        finally:
            server.should_exit = True
            await serving
    [delete] = upstream.answered("DELETE", 204)
    assert delete.path == f"{PATH}/{key}" and upstream.instances == {}
