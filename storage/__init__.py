"""Persistence below the engines: Redis task records and heartbeats, the bundled Redis, the object store."""

from storage.connections import REDIS_UNREACHABLE, redis_pool
from storage.heartbeats import Heartbeats
from storage.keys import DEFAULT_PREFIX, KeyLayout
from storage.redis_server import DataDirInUse, EmbeddedRedis, pid_alive
from storage.tasks import TERMINAL_STATUSES, TaskRecord, TaskStatus, TaskStore

__all__ = [
    "DEFAULT_PREFIX",
    "REDIS_UNREACHABLE",
    "TERMINAL_STATUSES",
    "DataDirInUse",
    "EmbeddedRedis",
    "Heartbeats",
    "KeyLayout",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "pid_alive",
    "redis_pool",
]
