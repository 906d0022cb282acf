"""What an algorithm can do while it runs: report progress, save output files, read stored objects.

A Serve call carries a :class:`CallContext` (the queue's id and, for a task, its
id); the replica binds it for the duration of the call. :func:`report_progress`
is then a Redis write and :func:`save_output` an object-store write under
``outputs/<task_id>/``. For plain synchronous calls progress is a no-op and
outputs go under ``outputs/sync-<uuid>/``.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache
from typing import Any

from engines.config import StoreConfig
from engines.errors import ValidationFailed
from storage import TaskStore, redis_pool
from storage.objects import ObjectStore, StorageError


@dataclass(frozen=True)
class CallContext:
    """What a Serve call carries besides its input: its store (by key) and its task, if any."""

    store_key: str | None = None
    task_id: str | None = None


@cache
def _tasks(config: StoreConfig) -> TaskStore:
    return config.task_store(redis_pool(config.redis_url))


@cache
def _objects(config: StoreConfig) -> ObjectStore:
    return config.objects.open()


_bound: ContextVar[tuple[StoreConfig, str | None] | None] = ContextVar("algo_mcp_call", default=None)


async def bind(context: CallContext | None) -> None:
    """Called by the replica before each call, in the call's own task."""
    if context is None or context.store_key is None:
        _bound.set(None)
        return
    from engines.serving.stores import lookup  # imports Ray: only inside replicas

    _bound.set((await lookup(context.store_key), context.task_id))


async def report_progress(fraction: float, message: str | None = None) -> bool:
    """Record progress of the running task; False when it has ended (e.g. cancelled): stop."""
    bound = _bound.get()
    if bound is None or bound[1] is None:
        return True
    config, task_id = bound
    return await _tasks(config).set_progress(task_id, fraction, message)


async def read_object(field: str, key: str) -> bytes:
    """An object from the store this call is bound to (e.g. an earlier task's output)."""
    bound = _bound.get()
    if bound is None:
        raise ValidationFailed([f"{field}: object keys need the object store, which this call lacks"])
    try:
        data, _ = await _objects(bound[0]).get(key)
    except StorageError as exc:
        raise ValidationFailed([f"{field}: {exc}"]) from None
    return data


async def save_output(name: str, data: bytes, content_type: str) -> dict[str, Any]:
    """Store a file the algorithm produced; the answer is ``{url, key, content_type, bytes}``."""
    bound = _bound.get()
    if bound is None:
        raise RuntimeError("no object store is bound to this call")
    config, task_id = bound
    folder = task_id or f"sync-{uuid.uuid4().hex}"
    stored = await _objects(config).put(f"outputs/{folder}/{name}", data, content_type)
    return {"url": stored.url, "key": stored.key, "content_type": stored.content_type, "bytes": stored.bytes}
