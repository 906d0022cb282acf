"""Long jobs from the gateway's side: where tasks are stored, how they are submitted and awaited.

The gateway keeps no task state: every answer is read from Redis, the one
source of truth, so any number of gateways can serve the same tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from pydantic import BaseModel, Field

from engines.client import AlgorithmClient
from engines.errors import AlgoError, NotConfigured, Unavailable, ValidationFailed
from engines.safe_url import check_public_url
from engines.settings import Settings
from engines.task_context import ObjectStoreConfig, TaskQueueConfig
from storage import REDIS_UNREACHABLE, EmbeddedRedis, TaskRecord, TaskStatus, TaskStore, redis_pool, supervise
from storage.objects import ObjectStore, S3ObjectStore

log = logging.getLogger(__name__)

POLL_AFTER_S = 2.0
#: what a task id looks like (uuid4 hex); callers' ids are checked against it before Redis is asked
TASK_ID_PATTERN, TASK_ID_MAX_LENGTH = r"^[0-9a-f]+$", 64


class TaskRef(BaseModel):
    """What a long job returns at once: where to follow it."""

    task_id: str = Field(description="the task's id")
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    resource: str = Field(description="MCP resource with the task record, task://<id>")
    poll_after_s: float = Field(description="a sensible delay before asking again (or call wait_task)")

    @classmethod
    def of(cls, record: TaskRecord) -> TaskRef:
        return cls(task_id=record.task_id, status=record.status.value,
                   resource=f"task://{record.task_id}", poll_after_s=POLL_AFTER_S)


class UnknownTask(AlgoError):
    http_status = 404
    code = "unknown_task"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r} (it may have expired)")


def _url_secret(settings: Settings) -> str:
    """The local links' signing key: configured, or made once and kept in DATA_DIR for restarts."""
    if settings.object_url_secret:
        return settings.object_url_secret.get_secret_value()
    path = settings.data_dir / "object-url-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def object_store_config(settings: Settings) -> ObjectStoreConfig:
    base_url = settings.public_base_url or f"http://{settings.service_host}:{settings.service_port}"
    s3_secret = settings.s3_secret_access_key
    return ObjectStoreConfig(
        bucket=settings.s3_bucket, local_dir=str(settings.object_store_dir or settings.data_dir / "objects"),
        base_url=base_url, signing_secret=_url_secret(settings), endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region, access_key_id=settings.s3_access_key_id,
        secret_access_key=s3_secret.get_secret_value() if s3_secret else None,
        addressing_style=settings.s3_addressing_style, url_expires_s=settings.output_url_expires_seconds)


@contextmanager
def _store_reachable() -> Iterator[None]:
    """Redis out of reach is the caller's "retry shortly", not an internal error."""
    try:
        yield
    except REDIS_UNREACHABLE as exc:
        log.warning("task store unreachable: %s", exc)
        raise Unavailable("the task store (Redis) is not reachable; retry shortly") from None


class TaskQueue:
    """Submit, read, wait for and cancel tasks; usable once :meth:`running` has started it."""

    def __init__(self, settings: Settings, client: AlgorithmClient) -> None:
        self.settings = settings
        self.client = client
        self._store: TaskStore | None = None
        self.config: TaskQueueConfig | None = None
        self.objects: ObjectStore | None = None

    @property
    def store(self) -> TaskStore:
        if self._store is None:
            raise NotConfigured("the task queue is not running yet")
        return self._store

    @asynccontextmanager
    async def running(self, worker_id: str) -> AsyncIterator[TaskQueue]:
        """Connect to ``REDIS_URL`` or start the bundled server; heartbeat while open."""
        settings = self.settings
        embedded = None
        url = settings.redis_url
        if not url:
            embedded = EmbeddedRedis(settings.data_dir / "redis")
            url = await asyncio.to_thread(embedded.start)
            log.info("redis: bundled server at %s (data in %s)", url, embedded.data_dir)
        redis = redis_pool(url)
        self._store = TaskStore(redis, prefix=settings.task_key_prefix, task_ttl_s=settings.task_ttl_seconds,
                                visibility_timeout_s=settings.task_visibility_timeout_seconds)
        self.config = TaskQueueConfig(url, settings.task_key_prefix, object_store_config(settings))
        self.client.context = self.config
        self.objects = self.config.objects.open()
        if isinstance(self.objects, S3ObjectStore):
            await self.objects.ensure_bucket()
        background = [asyncio.create_task(self._heartbeat(worker_id))]
        if embedded is not None:
            background.append(asyncio.create_task(supervise(embedded)))
        try:
            yield self
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)  # ended before what they use closes
            await redis.aclose()
            self._store = None
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    async def _heartbeat(self, worker_id: str) -> None:
        info = {"kind": "gateway", "pid": os.getpid()}
        while True:
            with contextlib.suppress(Exception):
                await self.store.beat(worker_id, info, self.settings.heartbeat_ttl_seconds)
            await asyncio.sleep(self.settings.heartbeat_interval_seconds)

    async def submit(self, name: str, arguments: Any, callback_url: str | None = None) -> TaskRecord:
        """Validate, then record and enqueue the task; the task's payload is the validated input."""
        entry, inp = self.client.validate(name, arguments)
        if callback_url:
            await check_public_url("callback_url", callback_url, self.settings.fetch_allowlist)
        with _store_reachable():
            return await self.store.submit(name, inp.model_dump(mode="json"), callback_url=callback_url,
                                           timeout_s=entry.spec.timeout_s,
                                           max_attempts=self.settings.task_max_attempts)

    async def get(self, task_id: str) -> TaskRecord:
        with _store_reachable():
            record = await self.store.get(task_id)
        if record is None:
            raise UnknownTask(task_id)
        return record

    async def cancel(self, task_id: str) -> TaskRecord:
        await self.get(task_id)
        with _store_reachable():
            record = await self.store.cancel(task_id)
        if record is None:
            raise UnknownTask(task_id)
        return record

    async def watch(self, task_id: str, timeout_s: float) -> AsyncIterator[TaskRecord]:
        await self.get(task_id)
        with _store_reachable():
            async for record in self.store.watch(task_id, timeout_s=timeout_s):
                yield record

    async def wait(self, task_id: str, timeout_s: float) -> TaskRecord:
        with _store_reachable():
            record = await self.store.wait(task_id, timeout_s)
        if record is None:
            raise UnknownTask(task_id)
        return record

    async def list(self, status: str | None, algorithm: str | None, limit: int) -> list[TaskRecord]:
        if status is not None and status not in {s.value for s in TaskStatus}:
            raise ValidationFailed([f"status: must be one of {[s.value for s in TaskStatus]} (got {status!r})"])
        with _store_reachable():
            return await self.store.list(status=status, algorithm=algorithm, limit=limit)


class TaskFailed(AlgoError):
    """A task ended without a result; carries the task's own error."""

    http_status = 422
    code = "task_failed"

    def __init__(self, record: TaskRecord) -> None:
        self.error = record.error or {"type": record.status.value, "message": f"task {record.status.value}"}
        super().__init__(str(self.error.get("message", "the task failed")))

    def to_dict(self) -> dict[str, object]:
        return {"type": self.code, **self.error}


def outcome(record: TaskRecord) -> dict[str, Any]:
    """A finished task as a tool answer: the result, or its error raised again."""
    if record.status is TaskStatus.SUCCEEDED:
        return record.result
    raise TaskFailed(record)
