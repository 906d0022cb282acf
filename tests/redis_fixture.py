"""A real Redis-compatible server (the bundled Valkey) over TCP, for storage tests.

One server per test session; each test gets its own key prefix, so tests share
the server without seeing each other's tasks. Import the fixture functions
into a test module to use ``redis_server``, ``redis_client`` and ``make_store``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from storage import EmbeddedRedis, TaskStore, redis_pool

T = TypeVar("T")
StoreFactory = Callable[..., TaskStore]


@pytest.fixture(scope="session", name="redis_server")
def redis_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path_factory.mktemp("redis-data")) as server:
        yield server


@pytest.fixture(name="redis_client")
async def redis_client_fixture(redis_server: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = redis_pool(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture(name="make_store")
def store_factory_fixture(redis_client: Redis) -> StoreFactory:
    """Stores under a prefix unique to the test; keyword arguments go to ``TaskStore``."""
    prefix = f"test_{uuid4().hex[:10]}"

    def make(**options: Any) -> TaskStore:
        return TaskStore(redis_client, prefix=prefix, **options)

    return make
