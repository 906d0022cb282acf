"""Persistence below the engines: Redis task records and the object store."""

from storage.connections import REDIS_UNREACHABLE, redis_pool
from storage.keys import DEFAULT_PREFIX, KeyLayout
from storage.redis_server import DataDirInUse, EmbeddedRedis, supervise
from storage.tasks import TERMINAL_STATUSES, TaskRecord, TaskStatus, TaskStore

__all__ = [
    "DEFAULT_PREFIX",
    "REDIS_UNREACHABLE",
    "TERMINAL_STATUSES",
    "DataDirInUse",
    "EmbeddedRedis",
    "KeyLayout",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "redis_pool",
    "supervise",
]
