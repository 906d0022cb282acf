"""One object owns the lifecycle: Redis, Ray, the gateway's heartbeat, every deployment.

``async with Runtime(...)`` returns at once and starts everything in the
background, on one exit stack, in this order (each a phase of
:class:`~engines.readiness.Readiness`):

1. the local cluster of ``DATA_DIR`` joined (or its keeper spawned) when
   ``RAY_ADDRESS`` or ``REDIS_URL`` is unset (``engines.local_cluster``);
2. the task store: Redis, the gateway's heartbeat, the object store; tasks can
   be submitted from here on (about a second into a cold start);
3. Ray joined, the store config registered with it;
4. the applications (``engines.serving.deploy.AppBuilder``), wave by wave:
   quick algorithms, models, the task worker.

Leaving undoes exactly that, in reverse; the cluster and its deployments stay
for other gateways (and the keeper stops them after the linger). With
``REGISTRY_URL`` set the gateway is registered upstream from the moment it is
entered until it is left (``engines.registration``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from dataclasses import replace
from types import TracebackType
from typing import TYPE_CHECKING, Any

from engines.actors import api as actor_api
from engines.actors.client import Actors
from engines.algorithms.registry import Registry
from engines.calls import Calls
from engines.config import object_store_config, store_config
from engines.errors import AlgoError
from engines.limits import Limits
from engines.local_cluster import LocalCluster, Service
from engines.loops import every
from engines.metrics import Metrics
from engines.readiness import RAY, TASKS, Readiness
from engines.registration import Registration
from engines.serving import cluster
from engines.settings import Settings
from engines.streams.pipelines import Pipelines
from engines.tasks.queue import TaskQueue
from storage import Heartbeats, redis_pool
from storage.actors import ActorStore
from storage.limits import LimitStore
from storage.objects import S3ObjectStore
from storage.pipelines import PipelineStore

if TYPE_CHECKING:  # it imports Ray, which the gateway imports only once it joins a cluster
    from engines.serving.client import AlgorithmClient

log = logging.getLogger(__name__)

#: how often the supervising gateway makes pipelines' consumers match their records
PIPELINE_ROUND_S = 1.0


class Runtime:
    """Everything a gateway needs running, started in the background."""

    #: the readiness phase of this gateway's task worker (its application is named after its queue)
    WORKER = "task worker"
    ACTOR_HOSTS = "actor hosts"

    def __init__(self, settings: Settings, registry: Registry, *, base_url: str | None = None) -> None:
        """``base_url``: where this gateway serves ``/objects/`` (local links point there)."""
        self.settings, self.registry = settings, registry
        self.readiness = Readiness(settings.data_dir / "startup-times.json")
        self.objects = object_store_config(settings, base_url).open()
        self.tasks = TaskQueue(settings, registry, self.readiness, self.objects)
        self.metrics = Metrics()  # this gateway's registry (GET /metrics)
        self.calls = Calls(settings, registry, self.readiness, self.tasks, self.metrics)
        self.actors = Actors({name: entry.template for name, entry in registry.actors.items()})
        self.pipelines = Pipelines(settings, registry, self.tasks)
        self.limits = Limits(settings, registry, self.readiness)
        self.base_url = base_url
        self.registration = Registration.of(settings, registry, self.health, base_url)  # None without REGISTRY_URL
        self.worker_app: str | None = None
        self._client: AlgorithmClient | None = None
        self._heartbeats: Heartbeats | None = None
        self._stack = AsyncExitStack()
        self._start: asyncio.Task | None = None
        self._holders = 0
        # typical seconds on a 2-core machine, cold, until this machine has measured its own
        self.readiness.add(TASKS, 3)
        self.readiness.add(RAY, 15, needs=TASKS)
        for entry in registry:
            self.readiness.add(entry.name, 30 if entry.cls.starts_slowly() else 10, needs=RAY)
        self.readiness.add(self.WORKER, 40, needs=RAY)
        if registry.actors:
            self.readiness.add(self.ACTOR_HOSTS, 10, needs=RAY)

    async def __aenter__(self) -> Runtime:
        """Start in the background; entered again (one gateway served in memory and over HTTP at
        once), it is shared, and the last to leave stops it."""
        self._holders += 1
        if self._holders == 1:
            self._start = asyncio.create_task(self._run(), name="algo-mcp start")
            if self.registration:  # at once: its heartbeats carry the health as the start goes on
                self.registration.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._holders -= 1
        if self._holders:
            return
        if self.registration:  # first: the upstream stops sending callers here before anything stops
            await self.registration.stop()
        if self._start is not None and not self._start.done():
            self._start.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(self._start or asyncio.sleep(0), return_exceptions=True)
        self.readiness.save_times()  # what came up before the stop is worth knowing next time too
        await self._stack.aclose()

    async def health(self) -> dict[str, Any]:
        """``starting`` until every phase is up or failed; then ``ok`` when every application runs
        (Serve's own word for each) and Redis answers, else ``degraded``."""
        phases = self.readiness.report()
        if not self.readiness.settled:
            return {"status": "starting", "summary": self.readiness.summary(), "phases": phases}
        algorithms = {name: {"status": "FAILED", "message": phase["message"]} for name, phase in phases.items()
                      if phase["status"] == "failed" and name not in (TASKS, RAY)}
        if self.readiness.is_ready(RAY):
            from engines.serving.deploy import statuses

            running = [*self.registry.names(), *([self.worker_app] if self.worker_app else [])]
            algorithms |= {n: s for n, s in (await asyncio.to_thread(statuses, running)).items()
                           if n not in algorithms}
        try:
            workers = await self._heartbeats.live() if self._heartbeats else []
            store_ok = self._heartbeats is not None
        except Exception:  # Redis down: say so rather than fail the probe
            workers, store_ok = [], False
        ok = store_ok and all(a["status"] == "RUNNING" for a in algorithms.values()) and all(
            p["status"] == "ready" for p in phases.values())
        return {"status": "ok" if ok else "degraded", "phases": phases, "algorithms": algorithms, "workers": workers}

    async def started(self) -> None:
        """Wait for the whole start (in-process users: tests, benches)."""
        assert self._start is not None, "enter the runtime first"
        await asyncio.shield(self._start)

    # -- the start, in the background --------------------------------------------

    async def _run(self) -> None:
        try:
            local = await self._local_cluster()
            await self._open_tasks(local)
            await self._join_ray(local)
            await self._deploy()
        except Exception as exc:
            reason = exc.message if isinstance(exc, AlgoError) else f"{type(exc).__name__}: {exc}"
            log.error("start-up: %s", reason)
            self.readiness.fail_unsettled(self.readiness.phases, reason)

    async def _local_cluster(self) -> LocalCluster | None:
        needed: set[Service] = set()
        if not self.settings.ray_address:
            needed.add("ray")
        if not self.settings.redis_url:
            needed.add("redis")
        if not needed:
            return None
        local = LocalCluster(self.settings.data_dir, needed, self.settings.local_cluster_linger_s)
        await local.join()
        self._stack.callback(local.leave)
        return local

    async def _open_tasks(self, local: LocalCluster | None) -> None:
        self.readiness.starting(TASKS)
        redis_url = self.settings.redis_url or await local.address("redis")  # type: ignore[union-attr]
        redis = redis_pool(redis_url)
        self._stack.push_async_callback(redis.aclose)
        config = store_config(self.settings, redis_url, self.base_url)
        self.tasks.open(config.task_store(redis), config)
        self.actors.open(ActorStore(redis, prefix=config.prefix))
        self.pipelines.open(PipelineStore(redis, prefix=config.prefix), config)
        self.limits.open(LimitStore(redis, prefix=config.prefix))
        await self.pipelines.declare()
        actor_api.use(self.actors)
        self._stack.callback(actor_api.use, None)
        if isinstance(self.objects, S3ObjectStore):
            await self.objects.ensure_bucket()
        self._heartbeats = heartbeats = Heartbeats(redis, prefix=self.settings.task_key_prefix)
        worker_id = f"gateway-{socket.gethostname()}-{os.getpid()}".replace(":", "-")

        async def beat() -> None:
            await heartbeats.beat(worker_id, {"kind": "gateway", "pid": os.getpid()},
                                  self.settings.heartbeat_ttl_seconds)

        self._background(every(self.settings.heartbeat_interval_seconds, beat, what="gateway heartbeat"))
        self.readiness.ready(TASKS, typical=local is not None and local.spawned)

    async def _join_ray(self, local: LocalCluster | None) -> None:
        self.readiness.starting(RAY)
        address = self.settings.ray_address or await local.address("ray")  # type: ignore[union-attr]
        cluster.prepare_env(self.settings)  # before Ray is imported, if nothing imported it yet
        from engines.serving import stores
        from engines.serving.client import AlgorithmClient

        await asyncio.to_thread(cluster.connect, address)
        self._stack.callback(cluster.disconnect)
        self._client = AlgorithmClient()
        self._stack.push_async_callback(self._client.close)  # its routers stop before Ray is left
        self.calls.connect(self._client)
        assert self.tasks.config is not None
        await asyncio.to_thread(stores.register, self.tasks.config)
        self._background(every(PIPELINE_ROUND_S, self.pipelines.supervise, what="pipeline supervisor"))
        self.readiness.ready(RAY, typical=local is not None and local.spawned)

    async def _deploy(self) -> None:
        from engines.serving.deploy import AlgorithmApp, deploy
        from engines.tasks.worker import TaskWorkerApp, TaskWorkerConfig

        assert self.tasks.config is not None and self._client is not None
        worker = TaskWorkerApp(TaskWorkerConfig.of(self.settings, self.tasks.config), self.settings, self.WORKER)
        self.worker_app = worker.name
        await self.limits.load()  # limits changed at run time, so a running deployment is not reverted
        await asyncio.gather(
            deploy([*(AlgorithmApp(entry, self.settings) for entry in self.registry), worker], self.readiness,
                   self._client),
            self._start_actor_hosts())

    async def _start_actor_hosts(self) -> None:
        """One pool of hosts per placement the registry's actor templates ask for."""
        if not self.registry.actors:
            return
        from engines.actors.host import HostConfig
        from engines.actors.pools import HostCalls, PoolSpec, start_pool

        self.readiness.starting(self.ACTOR_HOSTS)
        entries = list(self.registry.actors.values())
        assert self.tasks.config is not None
        # hosts make no links: without this gateway's address their pool is every gateway's on this queue
        store = replace(self.tasks.config, objects=replace(self.tasks.config.objects, base_url=""))
        config = HostConfig(store, tuple(sorted({e.template.target.__module__ for e in entries})),
                            self.settings.actor_lease_s, self.settings.actor_max_active,
                            self.settings.actor_state_inline_bytes,
                            int(self.settings.actor_host_state_budget_mb * 2**20),
                            tuple((e.name, e.template.persistence) for e in sorted(entries, key=lambda e: e.name)))
        placements = sorted({e.spec.placement for e in entries})
        try:
            pools = await asyncio.gather(*(start_pool(PoolSpec(tuple(e.template for e in entries if e.spec.placement
                                                                     == placement), *placement), config)
                                           for placement in placements))
        except Exception as exc:
            self.readiness.failed(self.ACTOR_HOSTS, f"could not start the actor hosts: {type(exc).__name__}: {exc}")
            return
        self.actors.connect(HostCalls(self.settings.actor_call_timeout_s), pools)
        self.readiness.ready(self.ACTOR_HOSTS)

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self._stack.push_async_callback(stop)
