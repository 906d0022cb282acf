"""What an algorithm can do while running as a task: report progress, save output files.

The replica binds the current task for the duration of a call that came from
the task queue; :func:`report_progress` is then a Redis write and
:func:`save_output` an object-store write under ``outputs/<task_id>/``. For
plain synchronous calls progress is a no-op and outputs go under
``outputs/sync-<uuid>/``.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from functools import cache
from typing import Any

from engines.errors import ValidationFailed
from storage import TaskStore, redis_pool
from storage.objects import ObjectStore, StorageError, object_store_from_settings


@dataclass(frozen=True)
class ObjectStoreConfig:
    """Plain, picklable object-store settings, so replicas anywhere can open the same store."""

    bucket: str | None
    local_dir: str
    base_url: str
    signing_secret: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    addressing_style: str = "auto"
    url_expires_s: int = 3600

    def open(self) -> ObjectStore:
        return object_store_from_settings(**asdict(self))


@dataclass(frozen=True)
class TaskQueueConfig:
    """Where task records and outputs live; passed to replicas with each queued call."""

    redis_url: str
    prefix: str
    objects: ObjectStoreConfig


@cache
def _store(config: TaskQueueConfig) -> TaskStore:
    return TaskStore(redis_pool(config.redis_url), prefix=config.prefix)


@cache
def _objects(config: ObjectStoreConfig) -> ObjectStore:
    return config.open()


_current: ContextVar[tuple[TaskQueueConfig, str] | None] = ContextVar("algo_mcp_task", default=None)
_sync_objects: ContextVar[ObjectStoreConfig | None] = ContextVar("algo_mcp_objects", default=None)


def bind(config: TaskQueueConfig, task_id: str | None) -> None:
    """Called by the replica before each call; ``task_id`` None for synchronous calls."""
    _sync_objects.set(config.objects)
    _current.set((config, task_id) if task_id else None)


async def report_progress(fraction: float, message: str | None = None) -> bool:
    """Record progress of the running task; False when it has ended (e.g. cancelled): stop early."""
    current = _current.get()
    if current is None:
        return True
    config, task_id = current
    return await _store(config).set_progress(task_id, fraction, message)


async def read_object(field: str, key: str) -> bytes:
    """An object from the store this call is bound to (e.g. an earlier task's output)."""
    current = _current.get()
    objects = current[0].objects if current else _sync_objects.get()
    if objects is None:
        raise ValidationFailed([f"{field}: object keys need the object store, which this call lacks"])
    try:
        data, _ = await _objects(objects).get(key)
    except StorageError as exc:
        raise ValidationFailed([f"{field}: {exc}"]) from None
    return data


async def save_output(name: str, data: bytes, content_type: str) -> dict[str, Any]:
    """Store a file the algorithm produced; the answer is ``{url, key, content_type, bytes}``."""
    current = _current.get()
    objects = current[0].objects if current else _sync_objects.get()
    if objects is None:
        raise RuntimeError("no object store is bound to this call")
    folder = current[1] if current else f"sync-{uuid.uuid4().hex}"
    stored = await _objects(objects).put(f"outputs/{folder}/{name}", data, content_type)
    return {"url": stored.url, "key": stored.key, "content_type": stored.content_type, "bytes": stored.bytes}
