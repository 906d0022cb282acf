"""Actor hosts on Ray: each template's pool of named host actors, and calls routed to them.

An id is routed to a host of its template's pool by a stable hash, so every
gateway picks the same one; if the actor is active on another host (a pool that
changed, a host that restarted), that host's answer says where, and the call
follows it. A call whose host dies under it is sent again with the same call id
once Ray has restarted the host, which answers a call that had already run with
its recorded result: a call is acknowledged once and counted once.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError

from engines.actors.host import ActorHost, HostConfig
from engines.actors.template import ActorTemplate
from engines.config import digest
from engines.errors import ActiveElsewhere, AlgoError
from engines.retries import retry_context

NAMESPACE = "algo-mcp"
_HOST_LOST = (ActorDiedError, ActorUnavailableError, RayActorError)


class _HostLost(Exception):
    """The host died (or is restarting) under the call: send it again, same call id."""


@dataclass(frozen=True)
class PoolSpec:
    """Templates placed alike, and their hosts: how many, and what each asks of the cluster."""

    templates: tuple[ActorTemplate, ...]
    hosts: int = 2
    num_cpus: float = 0.1
    num_gpus: float = 0.0


@dataclass(frozen=True)
class Pool:
    """Hosts by name, in a fixed order (the routing hash's), and the templates they run."""

    templates: tuple[str, ...]
    hosts: tuple[str, ...]

    def host_for(self, actor_id: str) -> str:
        return self.hosts[zlib.crc32(actor_id.encode()) % len(self.hosts)]


async def start_pool(spec: PoolSpec, config: HostConfig) -> Pool:
    """The hosts, started (or found running with the same configuration), each answering."""
    fingerprint = digest([t.module_target for t in spec.templates], config, spec.num_cpus, spec.num_gpus)[:8]
    names = tuple(f"actors-{fingerprint}-{i}" for i in range(spec.hosts))
    host_class = ray.remote(ActorHost)
    handles = [host_class.options(name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
                                  max_restarts=-1, max_task_retries=0, max_concurrency=10_000,
                                  num_cpus=spec.num_cpus, num_gpus=spec.num_gpus).remote(config, name)
               for name in names]
    await asyncio.gather(*(h.status.remote() for h in handles))
    return Pool(tuple(t.name for t in spec.templates), names)


class HostCalls:
    """Calls to hosts by name, following leases and riding out host restarts."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self._handles: dict[str, Any] = {}

    async def call(self, host: str, actor_id: str, method: str, args: list[Any], kwargs: dict[str, Any],
                   call_id: str, keep_alive: bool) -> Any:
        """Send the call; after its host died under it, send it again (as a retry: a call that ran is
        answered from its record) until the host is back, within the budget; follow a moved actor."""
        sent = False
        async with asyncio.timeout(self.budget_s):
            async for attempt in retry_context(_HostLost):
                with attempt:
                    while True:
                        try:
                            return await self._send(host, "call", actor_id, method, args, kwargs, call_id,
                                                    keep_alive, sent)
                        except ActiveElsewhere as moved:
                            host = moved.host
                        finally:
                            sent = True

    async def delete(self, host: str, actor_id: str) -> bool:
        return await self._send(host, "delete", actor_id)

    async def passivate(self, host: str, actor_id: str) -> bool:
        return await self._send(host, "passivate", actor_id)

    async def status(self, host: str) -> dict[str, Any]:
        return await self._send(host, "status")

    async def activation(self, host: str, actor_id: str) -> dict[str, Any] | None:
        try:
            return await self._send(host, "activation", actor_id)
        except _HostLost:
            return None

    async def _send(self, host: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._handle(host), method).remote(*args)
        except RayTaskError as exc:
            if isinstance(exc.cause, AlgoError):
                raise exc.cause from None
            raise
        except _HOST_LOST:
            self._handles.pop(host, None)
            raise _HostLost(host) from None

    def _handle(self, host: str) -> Any:
        handle = self._handles.get(host)
        if handle is None:
            handle = self._handles[host] = ray.get_actor(host, namespace=NAMESPACE)
        return handle
