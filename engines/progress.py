"""Progress reports from inside an algorithm, written to the task record.

The replica sets the current task for the duration of a call that came from
the task queue; :func:`report_progress` is then a Redis write, and a no-op for
plain synchronous calls.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from storage import TaskStore

_current: ContextVar[tuple[TaskStore, str] | None] = ContextVar("algo_mcp_task", default=None)


@dataclass(frozen=True)
class TaskQueueConfig:
    """Where task records live; passed to replicas so they can write progress."""

    redis_url: str
    prefix: str


def bind(store: TaskStore, task_id: str) -> None:
    _current.set((store, task_id))


async def report_progress(fraction: float, message: str | None = None) -> bool:
    """Record progress of the running task; False when it has ended (e.g. cancelled): stop early."""
    current = _current.get()
    if current is None:
        return True
    store, task_id = current
    return await store.set_progress(task_id, fraction, message)
