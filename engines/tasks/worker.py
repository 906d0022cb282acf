"""The task worker: a Serve deployment that runs queued tasks from Redis.

Each replica claims tasks from the ``{prefix}:tasks`` consumer group, calls the
algorithm's own deployment (so its concurrency limit still holds), and writes
the outcome. A replica that dies leaves its claims to be redelivered after the
visibility timeout; a cancelled task's call is cancelled down to the replica.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve import Application

from engines.algorithms.context import CallContext
from engines.config import StoreConfig, digest
from engines.errors import AlgoError, Busy, ReplicaLost, ReplicaUnavailable, TimedOut
from engines.loops import every
from engines.retries import backoff, forever
from engines.serving.client import AlgorithmClient
from engines.serving.deploy import LAST, Demand, logging_config, replica_env
from engines.settings import Settings
from engines.streams.backfill import Backfill
from engines.streams.consumer import MemberConfig
from engines.streams.publish import Publisher
from engines.tasks.callbacks import deliver_callback
from storage import REDIS_UNREACHABLE, Heartbeats, TaskRecord, TaskStatus, redis_pool

log = logging.getLogger(__name__)

CLAIM_BLOCK_MS = 1000
CLAIM_BATCH = 32
DEFAULT_TIMEOUT_S = 3600.0
WORKER_CPUS = 0.1


@dataclass(frozen=True)
class TaskWorkerConfig:
    """Everything a worker replica is deployed with (the store's secrets cross the cluster once)."""

    store: StoreConfig
    concurrency: int
    heartbeat_interval_s: float
    heartbeat_ttl_s: float
    visibility_timeout_s: float
    callback_secret: str | None
    kafka_bootstrap_servers: str | None = None  # where tasks' ``result_topic`` lives

    @classmethod
    def of(cls, settings: Settings, store: StoreConfig) -> TaskWorkerConfig:
        secret = settings.callback_secret.get_secret_value() if settings.callback_secret else None
        return cls(store, settings.task_worker_concurrency, settings.heartbeat_interval_seconds,
                   settings.heartbeat_ttl_seconds, settings.task_visibility_timeout_seconds, secret,
                   settings.kafka_bootstrap_servers)


@serve.deployment
class TaskWorker:
    """Runs up to ``concurrency`` tasks at a time; Serve runs ``task_workers`` of these."""

    async def __init__(self, config: TaskWorkerConfig, fingerprint: str) -> None:
        self._config, self._fingerprint = config, fingerprint
        self._client = AlgorithmClient()  # calls deployments by name; the gateway validated
        self._redis = redis_pool(config.store.redis_url)
        self._store = config.store.task_store(self._redis, visibility_timeout_s=config.visibility_timeout_s)
        self._heartbeats = Heartbeats(self._redis, prefix=config.store.prefix)
        self._worker_id = f"task-worker-{serve.get_replica_context().replica_id.unique_id}"
        servers = config.kafka_bootstrap_servers
        self._publisher = Publisher(servers, self._worker_id) if servers else None
        self._slots = asyncio.Semaphore(config.concurrency)
        self._running: dict[str, asyncio.Task] = {}
        self._leases: dict[str, str] = {}  # task id → its stream message, renewed while it runs here
        lease_every = config.visibility_timeout_s / 3
        self._loops = [
            asyncio.create_task(self._claim_loop()),
            asyncio.create_task(self._cancel_loop()),
            asyncio.create_task(every(config.heartbeat_interval_s, self._beat, what="task worker heartbeat")),
            asyncio.create_task(every(lease_every, self._renew_leases, what="renewing task claims",
                                      first_after_s=lease_every)),
        ]

    async def __del__(self) -> None:
        for task in [*self._loops, *self._running.values()]:
            task.cancel()
        await self._redis.aclose()

    def fingerprint(self) -> str:
        return self._fingerprint

    def status(self) -> dict[str, Any]:
        return {"worker_id": self._worker_id, "pid": os.getpid(), "running": sorted(self._running)}

    async def _claim_loop(self) -> None:
        """Claim as many tasks as there are free slots (at most ``CLAIM_BATCH``), in one go."""
        claiming = forever(Exception)
        while True:
            await self._slots.acquire()
            free = 1
            while free < CLAIM_BATCH and not self._slots.locked():
                await self._slots.acquire()  # free now, so it does not wait
                free += 1
            records = await claiming(self._store.claim, self._worker_id, free, block_ms=CLAIM_BLOCK_MS,
                                     held=set(self._leases.values()))
            for _ in range(free - len(records)):
                self._slots.release()
            for record in records:
                task = asyncio.create_task(self._execute(record))
                self._running[record.task_id] = task
                if record.message_id:
                    self._leases[record.task_id] = record.message_id
                task.add_done_callback(lambda _, tid=record.task_id: self._done(tid))

    def _done(self, task_id: str) -> None:
        self._running.pop(task_id, None)
        self._leases.pop(task_id, None)
        self._slots.release()

    async def _execute(self, record: TaskRecord) -> None:
        try:
            result = await self._run(record)
        except asyncio.CancelledError:
            return  # cancel_task already wrote the terminal state
        except AlgoError as err:
            ended = await self._finish(record.task_id, TaskStatus.FAILED, error=err.to_dict())
        except Exception as exc:
            log.exception("task %s failed", record.task_id)
            error = {"type": "internal", "message": f"{type(exc).__name__}; see the worker log"}
            ended = await self._finish(record.task_id, TaskStatus.FAILED, error=error)
        else:
            ended = await self._finish(record.task_id, TaskStatus.COMPLETED, result=result)
        self._leases.pop(record.task_id, None)  # its end is written: no claim to keep, nothing to stop
        if ended and (record.callback_url or record.result_topic):
            final = await self._store.get(record.task_id)
            if final is not None:
                await self._deliver(final)

    async def _deliver(self, final: TaskRecord) -> None:
        """The final record to its callback and its topic, at once (each retries on its own)."""
        sends = []
        if final.callback_url:
            sends.append(deliver_callback(final.callback_url, final.public(), self._config.callback_secret))
        if final.result_topic:
            if self._publisher is None:  # the gateway checked; a worker deployed without the broker cannot
                log.warning("task %s: no broker to publish its record to %s", final.task_id, final.result_topic)
            else:
                sends.append(self._publisher.publish(final.result_topic, final.task_id, final.public()))
        await asyncio.gather(*sends)

    async def _finish(self, task_id: str, status: TaskStatus, result: Any = None,
                      error: dict[str, Any] | None = None) -> bool:
        """Write the task's end, retrying while Redis is unreachable: the work is done, and its
        lease stays with this worker meanwhile, so it is neither lost nor run again."""
        return await forever(REDIS_UNREACHABLE)(self._store.finish, task_id, status, result=result, error=error)

    async def _run(self, record: TaskRecord) -> dict[str, Any]:
        """Call the algorithm within the task's ``timeout_s``, waits included.

        A busy algorithm is waited for, not failed (its limit is the backpressure),
        after the wait it suggests. A replica that dies under the task costs an
        attempt, as a dying worker does, and the task runs again once Serve has
        replaced it, until ``max_attempts`` is spent.
        """
        timeout_s = record.timeout_s or DEFAULT_TIMEOUT_S
        if record.kind == "backfill":
            return await self._backfill(record, timeout_s)
        context = CallContext(self._config.store.key, record.task_id)
        attempt = record.attempts
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s

        async def once() -> dict[str, Any]:
            nonlocal attempt
            try:
                return await self._client.call(record.algorithm, record.payload, deadline - loop.time(), context)
            except ReplicaUnavailable as lost:
                if attempt >= record.max_attempts:
                    raise ReplicaLost(record.algorithm, attempt, record.max_attempts, lost.reason) from None
                log.warning("task %s: %s on attempt %d; running it again", record.task_id, lost.message, attempt)
                attempt = await self._store.retry(record.task_id)
                if not attempt:
                    raise asyncio.CancelledError from None  # it ended meanwhile (cancelled): nothing to run
                raise

        def retry_after(exc: Exception) -> bool | float:
            return exc.retry_after_s if isinstance(exc, Busy) else isinstance(exc, ReplicaUnavailable)

        try:
            async with asyncio.timeout_at(deadline):
                return await backoff(attempts=None)(retry_after, once)
        except (TimeoutError, TimedOut):  # the wait ran out, or the last call did: the task's limit either way
            raise TimedOut(record.algorithm, timeout_s) from None

    async def _backfill(self, record: TaskRecord, timeout_s: float) -> dict[str, Any]:
        """A topic range through the algorithm (``engines.streams.backfill``), its progress recorded."""
        store, payload = self._config.store, record.payload
        config = MemberConfig(payload["spec"], f"backfill-{record.task_id[:12]}", store.redis_url, store.prefix,
                              store.key, payload["call_timeout_s"])

        async def progress(fraction: float, message: str) -> bool:
            return await self._store.set_progress(record.task_id, fraction, message)

        try:
            async with asyncio.timeout(timeout_s):
                return await Backfill(config).run(progress)
        except TimeoutError:
            raise TimedOut(record.algorithm, timeout_s) from None

    async def _cancel_loop(self) -> None:
        """Stop running tasks as they are cancelled (pub/sub; resubscribed with backoff if it drops)."""
        async def follow() -> None:
            async for task_id in self._store.cancellations():
                task = self._running.get(task_id)
                if task is not None:
                    task.cancel()

        await forever(Exception)(follow)

    async def _beat(self) -> None:
        await self._heartbeats.beat(self._worker_id, {"kind": "task-worker", "running": len(self._running)},
                                    self._config.heartbeat_ttl_s)

    async def _renew_leases(self) -> None:
        """Keep the claims of the tasks still running here, and stop those that ended elsewhere
        meanwhile (a cancellation sent while this worker's pub/sub connection was down)."""
        await self._store.renew_leases(self._worker_id, list(self._leases.values()))
        for task_id in await self._store.ended(list(self._leases)):
            task = self._running.get(task_id)
            if task is not None and task_id in self._leases:  # not ended by this worker meanwhile
                task.cancel()


def worker_app_name(store: StoreConfig) -> str:
    """One worker application per task queue (Redis and prefix), so gateways on different
    queues can share a cluster without taking each other's worker."""
    return f"algo-mcp-task-worker-{store.id[:8]}"


@dataclass(frozen=True)
class TaskWorkerApp:
    """The task worker as a Serve application: deployed last, once the algorithms it calls are up.
    It knows no registry (it calls deployments by name), so gateways with different registries share it."""

    config: TaskWorkerConfig
    settings: Settings
    phase: str
    wave: int = LAST

    @property
    def name(self) -> str:
        return worker_app_name(self.config.store)

    def demand(self) -> Demand:
        return Demand(self.settings.task_workers, WORKER_CPUS, 0.0)

    def _options(self) -> dict[str, Any]:
        return {"name": self.name, "num_replicas": self.settings.task_workers,
                "logging_config": logging_config(self.settings),
                "ray_actor_options": {"num_cpus": WORKER_CPUS,
                                      "runtime_env": {"env_vars": replica_env(self.settings)}}}

    def fingerprint(self) -> str:
        return digest(self.config, self._options())

    def build(self) -> Application:
        return TaskWorker.options(**self._options()).bind(self.config, self.fingerprint())
