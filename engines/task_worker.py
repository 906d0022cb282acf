"""The task worker: a Serve deployment that runs queued tasks from Redis.

Each replica claims tasks from the ``{prefix}:tasks`` consumer group, calls the
algorithm's own deployment (so its concurrency limit still holds), and writes
the outcome. A replica that dies leaves its claims to be redelivered after the
visibility timeout; a cancelled task's call is cancelled down to the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from ray import serve

from engines.callbacks import deliver_callback
from engines.client import AlgorithmClient
from engines.errors import AlgoError, Busy, ReplicaLost, ReplicaUnavailable
from engines.registry import Registry
from engines.task_context import TaskQueueConfig
from storage import REDIS_UNREACHABLE, TaskRecord, TaskStatus, TaskStore, redis_pool

log = logging.getLogger(__name__)

CLAIM_BLOCK_MS = 1000
CLAIM_BATCH = 32
DEFAULT_TIMEOUT_S = 3600.0
_RETRY_PAUSE_S = 1.0
_MAX_RETRY_PAUSE_S = 10.0


@serve.deployment
class TaskWorker:
    """Runs up to ``concurrency`` tasks at a time; Serve runs ``task_workers`` of these."""

    async def __init__(self, queue: TaskQueueConfig, concurrency: int,
                       heartbeat_interval_s: float, heartbeat_ttl_s: float,
                       visibility_timeout_s: float, callback_secret: str | None, fingerprint: str) -> None:
        self._fingerprint = fingerprint
        self._client = AlgorithmClient(Registry([]))  # calls deployments by name; the gateway validated
        self._client.context = queue
        self._redis = redis_pool(queue.redis_url)
        self._store = TaskStore(self._redis, prefix=queue.prefix, visibility_timeout_s=visibility_timeout_s)
        self._worker_id = f"task-worker:{serve.get_replica_context().replica_id.unique_id}"
        self._slots = asyncio.Semaphore(concurrency)
        self._running: dict[str, asyncio.Task] = {}
        self._leases: dict[str, str] = {}  # task id → its stream message, renewed while it runs here
        self._callback_secret = callback_secret
        self._beat = (heartbeat_interval_s, heartbeat_ttl_s)
        self._loops = [asyncio.create_task(loop()) for loop in
                       (self._claim_loop, self._cancel_loop, self._heartbeat_loop, self._lease_loop)]

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
        while True:
            await self._slots.acquire()
            free = 1
            while free < CLAIM_BATCH and not self._slots.locked():
                await self._slots.acquire()  # free now, so it does not wait
                free += 1
            try:
                records = await self._store.claim(self._worker_id, free, block_ms=CLAIM_BLOCK_MS,
                                                  held=set(self._leases.values()))
            except Exception:
                records = []
                log.exception("claiming tasks failed; retrying")
                await asyncio.sleep(_RETRY_PAUSE_S)
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
            ended = await self._finish(record.task_id, TaskStatus.SUCCEEDED, result=result)
        self._leases.pop(record.task_id, None)  # its end is written: no claim to keep, nothing to stop
        if ended and record.callback_url:
            final = await self._store.get(record.task_id)
            if final is not None:
                await deliver_callback(record.callback_url, final.public(), self._callback_secret)

    async def _finish(self, task_id: str, status: TaskStatus, result: Any = None,
                      error: dict[str, Any] | None = None) -> bool:
        """Write the task's end, retrying while Redis is unreachable: the work is done, and its
        lease stays with this worker meanwhile, so it is neither lost nor run again."""
        pause = _RETRY_PAUSE_S
        while True:
            try:
                return await self._store.finish(task_id, status, result=result, error=error)
            except REDIS_UNREACHABLE as exc:
                log.warning("task %s: cannot record its end yet (%s); retrying in %g s", task_id, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_RETRY_PAUSE_S)

    async def _run(self, record: TaskRecord) -> dict[str, Any]:
        """Call the algorithm. A busy one is waited for, not failed: its limit is the backpressure.
        A replica that dies under the task costs an attempt, as a dying worker does, and the
        task runs again (Serve replaces the replica) until ``max_attempts`` is spent."""
        timeout_s = record.timeout_s or DEFAULT_TIMEOUT_S
        attempt, pause = record.attempts, _RETRY_PAUSE_S
        while True:
            try:
                return await self._client.call_deployment(record.algorithm, record.payload, timeout_s,
                                                          task_id=record.task_id)
            except Busy as busy:
                await asyncio.sleep(busy.retry_after_s)
            except ReplicaUnavailable as lost:
                if attempt >= record.max_attempts:
                    raise ReplicaLost(record.algorithm, attempt, record.max_attempts, lost.reason) from None
                log.warning("task %s: %s on attempt %d; running it again in %g s",
                            record.task_id, lost.message, attempt, pause)
                await asyncio.sleep(pause)
                attempt = await self._store.retry(record.task_id)
                if not attempt:
                    raise  # it ended meanwhile (cancelled): its end is written, nothing to run
                pause = min(pause * 2, _MAX_RETRY_PAUSE_S)

    async def _cancel_loop(self) -> None:
        while True:
            try:
                async for task_id in self._store.cancellations():
                    task = self._running.get(task_id)
                    if task is not None:
                        task.cancel()
            except Exception:
                log.exception("cancel notifications lost; resubscribing")
                await asyncio.sleep(_RETRY_PAUSE_S)

    async def _heartbeat_loop(self) -> None:
        interval, ttl = self._beat
        while True:
            with contextlib.suppress(Exception):
                await self._store.beat(self._worker_id, {"kind": "task-worker", "running": len(self._running)}, ttl)
            await asyncio.sleep(interval)

    async def _lease_loop(self) -> None:
        """Keep the claims of the tasks still running here, and stop those that ended elsewhere
        meanwhile (a cancellation sent while this worker's pub/sub connection was down)."""
        while True:
            await asyncio.sleep(self._store.visibility_timeout_s / 3)
            with contextlib.suppress(Exception):
                await self._store.renew_leases(self._worker_id, list(self._leases.values()))
            with contextlib.suppress(Exception):
                for task_id in await self._store.ended(list(self._leases)):
                    task = self._running.get(task_id)
                    if task is not None and task_id in self._leases:  # not ended by this worker meanwhile
                        task.cancel()

