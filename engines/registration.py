"""Keep this gateway registered with an upstream service registry (``REGISTRY_URL``), by heartbeat (S1).

The protocol: JSON over HTTP, with ``Authorization: Bearer REGISTRY_TOKEN`` when set.

* ``POST {REGISTRY_URL}`` registers; the body carries our ``id`` (one per gateway process), so a
  repeated POST is an upsert. Any 2xx accepts it, optionally with ``{"id": ...}``: the id to use
  in the paths below instead of ours.
* ``PUT {REGISTRY_URL}/{id}/heartbeat`` every ``REGISTRY_HEARTBEAT_S``, with the current health.
* ``DELETE {REGISTRY_URL}/{id}`` once, on a clean stop.

A heartbeat not answered 2xx (refused while the registry restarts, 404/410 once it has forgotten
us, 5xx) sends us back to registering, with backoff until a POST is accepted. None of it stops the
gateway serving: each outage is logged once as a warning (stamina's retries at INFO).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any
from urllib.parse import quote

import httpx

from engines.algorithms.registry import Registry
from engines.config import default_base_url
from engines.loops import every
from engines.retries import MAX_PAUSE_S, backoff
from engines.settings import Settings

log = logging.getLogger(__name__)

Health = Callable[[], Awaitable[dict[str, Any]]]

#: one request to the registry; slower than this it is as good as down
REQUEST_TIMEOUT_S = 5.0
#: the deregistration at stop: short, so a registry that is down never holds a stop up (it expires us);
#: well within the 2 s a stdio gateway gives its whole stop
DELETE_TIMEOUT_S = 1.0


class _RegistryRefused(Exception):
    """The registry did not accept a request: unreachable, or an answer other than 2xx."""


def sha256_json(value: Any) -> str:
    """sha256 (hex) of ``value``'s canonical JSON: sorted keys, no spaces, UTF-8."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tool_hashes(registry: Registry) -> list[dict[str, str]]:
    """Each algorithm's tool name (also its REST route) and the hash of its input schema, by name."""
    return sorted(({"name": entry.name, "schema_sha256": sha256_json(entry.cls.Input.model_json_schema())}
                   for entry in registry), key=lambda tool: tool["name"])


def _version() -> str:
    try:
        return metadata.version("algo-mcp")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def announcement(settings: Settings, registry: Registry, base_url: str | None) -> dict[str, Any]:
    """What the registry is told about this gateway besides its id and health; ``tools_sha256`` hashes
    ``tools`` as sent, so gateways serving the same schemas have the same one."""
    tools = tool_hashes(registry)
    return {"service": settings.service_name, "base_url": settings.public_base_url or base_url or
            default_base_url(settings), "version": _version(), "heartbeat_s": settings.registry_heartbeat_s,
            "tools": tools, "tools_sha256": sha256_json(tools)}


class Registration:
    """This gateway's entry in the upstream registry, kept alive from :meth:`start` to :meth:`stop`."""

    def __init__(self, url: str, about: dict[str, Any], health: Health, *, interval_s: float,
                 token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.id = f"{about['service']}-{uuid.uuid4().hex}"
        self.about = {"id": self.id, **about}
        self.health, self.interval_s = health, interval_s
        self._where = str(httpx.URL(self.url).copy_with(username=None, password=None))  # for logs
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._path_id: str | None = None  # the registry's name for us, once it accepted us
        self._outage = False
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task | None = None

    @classmethod
    def of(cls, settings: Settings, registry: Registry, health: Health,
           base_url: str | None = None) -> Registration | None:
        """The gateway's registration, or None when ``REGISTRY_URL`` is unset."""
        if settings.registry_url is None:
            return None
        token = settings.registry_token
        return cls(str(settings.registry_url), announcement(settings, registry, base_url), health,
                   interval_s=settings.registry_heartbeat_s, token=token.get_secret_value() if token else None)

    def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, headers=self._headers)
        self._task = asyncio.create_task(self._keep_registered(), name="registry registration")

    async def stop(self) -> None:
        """Stop heartbeating and deregister, once and briefly (a registry that is down expires us itself)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is None:
            return
        try:
            if self._path_id is not None:
                await self._send("DELETE", self._instance_url(), timeout=DELETE_TIMEOUT_S)
                log.info("registry %s: deregistered %s", self._where, self._path_id)
        except _RegistryRefused as exc:
            log.warning("registry %s: could not deregister %s (%s); it will expire it", self._where,
                        self._path_id, exc)
        finally:
            await self._client.aclose()

    async def _keep_registered(self) -> None:
        pause_s = min(self.interval_s, MAX_PAUSE_S)
        register = backoff(attempts=None, initial_s=min(1.0, pause_s), max_s=pause_s,
                           jitter_s=min(1.0, pause_s)).on(_RegistryRefused)
        while True:
            await register(self._register)
            await every(self.interval_s, self._beat, what="registry heartbeat", first_after_s=self.interval_s)

    async def _register(self) -> None:
        try:
            answer = await self._send("POST", self.url, {**self.about, "health": await self._health()})
        except _RegistryRefused as exc:
            self._lost(f"registering: {exc}")
            raise
        self._path_id = _assigned_id(answer) or self.id
        log.info("registry %s: registered%s as %s", self._where, " again" if self._outage else "", self._path_id)
        self._outage = False

    async def _beat(self) -> bool:
        """One heartbeat; True (the loop is done) when it was not accepted: we register again."""
        try:
            body = {"id": self.id, "health": await self._health()}
            await self._send("PUT", f"{self._instance_url()}/heartbeat", body)
        except _RegistryRefused as exc:
            self._lost(f"heartbeat: {exc}")
            return True
        return False

    def _lost(self, problem: str) -> None:
        if not self._outage:
            log.warning("registry %s: %s; registering again with backoff (serving goes on)", self._where, problem)
        self._outage = True

    async def _health(self) -> dict[str, Any]:
        """The ``/healthz`` body; a probe that fails is news for the registry, not a reason to skip a beat."""
        try:
            return await self.health()
        except Exception as exc:
            return {"status": "degraded", "error": f"health probe failed: {type(exc).__name__}"}

    def _instance_url(self) -> str:
        assert self._path_id is not None
        return f"{self.url}/{quote(self._path_id, safe='')}"

    async def _send(self, method: str, url: str, body: dict[str, Any] | None = None,
                    **options: Any) -> httpx.Response:
        assert self._client is not None, "start() first"
        try:
            answer = await self._client.request(method, url, json=body, **options)
        except httpx.HTTPError as exc:
            raise _RegistryRefused(f"{type(exc).__name__}: {exc}") from None
        if answer.status_code in (404, 410) and method == "PUT":
            raise _RegistryRefused(f"HTTP {answer.status_code}: the registry does not know us (restarted?)")
        if not answer.is_success:
            raise _RegistryRefused(f"HTTP {answer.status_code}")
        return answer


def _assigned_id(answer: httpx.Response) -> str | None:
    """The id a registry may answer a registration with (``{"id": ...}``); None if it gave none."""
    try:
        given = answer.json().get("id")
    except (ValueError, AttributeError):  # no JSON, or JSON that is not an object
        return None
    return str(given) if given else None
