"""Long jobs from the gateway's side: submit, read, wait for, cancel and list tasks.

The gateway keeps no task state: every answer is read from Redis, the one
source of truth, so any number of gateways can serve the same tasks. The queue
is usable as soon as the runtime has the task store (about a second into a cold
start); until then a call waits for it within ``START_WAIT_S``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from engines.algorithms.registry import Registry
from engines.config import StoreConfig
from engines.errors import Unavailable, UnknownTask, ValidationFailed
from engines.net.safe_url import check_public_url
from engines.outputs import relink
from engines.readiness import TASKS, Readiness
from engines.settings import Settings
from engines.streams.publish import check_topic
from storage import REDIS_UNREACHABLE, TaskRecord, TaskStatus, TaskStore
from storage.objects import ObjectStore

log = logging.getLogger(__name__)

#: what a task id looks like (uuid4 hex); callers' ids are checked against it before Redis is asked
TASK_ID_PATTERN, TASK_ID_MAX_LENGTH = r"^[0-9a-f]+$", 64


@contextmanager
def _store_reachable() -> Iterator[None]:
    """Redis out of reach is the caller's "retry shortly", not an internal error."""
    try:
        yield
    except REDIS_UNREACHABLE as exc:
        log.warning("task store unreachable: %s", exc)
        raise Unavailable("the task store (Redis) is not reachable; retry shortly") from None


class TaskQueue:
    """The gateway's task operations; the runtime :meth:`open`\\ s it once Redis is up."""

    def __init__(self, settings: Settings, registry: Registry, readiness: Readiness, objects: ObjectStore) -> None:
        self.settings, self.registry, self.readiness, self.objects = settings, registry, readiness, objects
        self._store: TaskStore | None = None
        self.config: StoreConfig | None = None

    def open(self, store: TaskStore, config: StoreConfig) -> None:
        self._store, self.config = store, config

    async def store(self) -> TaskStore:
        """The task store, once the runtime has it (waiting for it within the start budget)."""
        await self.readiness.wait(TASKS, self.settings.start_wait_s)
        assert self._store is not None
        return self._store

    async def _fresh(self, record: TaskRecord | None, task_id: str) -> TaskRecord:
        if record is None:
            raise UnknownTask(task_id)
        if record.result is None:
            return record
        return replace(record, result=await relink(record.result, self.objects))

    async def submit(self, name: str, arguments: Any, callback_url: str | None = None,
                     result_topic: str | None = None) -> TaskRecord:
        """Validate, then record and enqueue the task; the task's payload is the validated input."""
        entry, inp = self.registry.validate(name, arguments)
        if callback_url:
            await check_public_url("callback_url", callback_url, self.settings.fetch_allowlist)
        if result_topic is not None:
            await check_topic("result_topic", result_topic, self.settings.kafka_bootstrap_servers)
        store = await self.store()
        with _store_reachable():
            return await store.submit(name, inp.model_dump(mode="json"), callback_url=callback_url,
                                      result_topic=result_topic, timeout_s=entry.spec.timeout_s,
                                      max_attempts=self.settings.task_max_attempts)

    async def submit_job(self, kind: str, algorithm: str, payload: dict[str, Any], timeout_s: float) -> TaskRecord:
        """Queue a task of another kind than a call (a backfill); its caller checked the payload."""
        store = await self.store()
        with _store_reachable():
            return await store.submit(algorithm, payload, kind=kind, timeout_s=timeout_s,
                                      max_attempts=self.settings.task_max_attempts)

    async def get(self, task_id: str) -> TaskRecord:
        store = await self.store()
        with _store_reachable():
            return await self._fresh(await store.get(task_id), task_id)

    async def cancel(self, task_id: str) -> TaskRecord:
        await self.get(task_id)
        store = await self.store()
        with _store_reachable():
            return await self._fresh(await store.cancel(task_id), task_id)

    async def watch(self, task_id: str, timeout_s: float) -> AsyncIterator[TaskRecord]:
        """The record now and after each change, until it ends or ``timeout_s`` passes."""
        await self.get(task_id)
        store = await self.store()
        with _store_reachable():
            async for record in store.watch(task_id, timeout_s=timeout_s):
                yield await self._fresh(record, task_id)

    async def wait(self, task_id: str, timeout_s: float) -> TaskRecord:
        store = await self.store()
        with _store_reachable():
            return await self._fresh(await store.wait(task_id, timeout_s), task_id)

    async def recent(self, status: str | None, algorithm: str | None, limit: int) -> list[TaskRecord]:
        if status is not None and status not in {s.value for s in TaskStatus}:
            raise ValidationFailed([f"status: must be one of {[s.value for s in TaskStatus]} (got {status!r})"])
        store = await self.store()
        with _store_reachable():
            records = await store.recent(status=status, algorithm=algorithm, limit=limit)
        return [await self._fresh(r, r.task_id) for r in records]
