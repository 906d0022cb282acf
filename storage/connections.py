"""The one way to get a Redis client, so every layer talks to Redis alike."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_CONNECTIONS = 512
CONNECTION_WAIT_S = 30.0
#: what redis-py raises when the server cannot be reached (down, cut off, too slow): worth a retry
REDIS_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def redis_pool(url: str, *, max_connections: int = MAX_CONNECTIONS,
               connection_wait_s: float = CONNECTION_WAIT_S) -> Redis:
    """An asyncio client over its own pool, returning ``str``: everything we store is UTF-8 text or JSON.

    The pool blocks when all ``max_connections`` are busy (a burst of
    submissions waits its turn instead of failing), for at most
    ``connection_wait_s``. Blocking commands (claim, wait, watch) each hold
    a connection while they wait, so size it for the waiters too. No socket read
    timeout, since those commands block on purpose. Close it with ``await client.aclose()``.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=connection_wait_s,
        decode_responses=True,
        socket_connect_timeout=5.0,
        socket_timeout=None,  # redis-py 8 defaults to 5 s, which breaks blocking reads
        health_check_interval=30,
    )
    return Redis.from_pool(pool)
