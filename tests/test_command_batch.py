"""Calls made together go to Redis together, and each caller still gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from storage import EmbeddedRedis, redis_pool
from storage.command_batch import CommandBatch
from tests.redis_fixture import redis_client_fixture, redis_server_fixture  # noqa: F401  (fixtures)

INCR = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


class Recording(CommandBatch):
    """Remembers the size of every pipeline it sends."""

    def __init__(self, redis: Redis, **kw: Any) -> None:
        super().__init__(redis, **kw)
        self.sent: list[int] = []

    async def _send(self, calls):  # type: ignore[no-untyped-def]
        self.sent.append(len(calls))
        return await super()._send(calls)


async def test_concurrent_calls_share_pipelines_and_each_gets_its_reply(redis_client: Redis):
    batch, script = Recording(redis_client), redis_client.register_script(INCR)
    await redis_client.delete("sb:n")
    replies = await asyncio.gather(*(batch.script(script, ["sb:n"], [1]) for _ in range(100)))
    assert sorted(replies) == list(range(1, 101))  # every call ran once, in some order
    assert sum(batch.sent) == 100 and len(batch.sent) <= 2  # the first goes alone; the rest wait for it
    assert await batch.script(script, ["sb:n"], [5]) == 105  # a lone call is sent at once
    assert batch.sent[-1] == 1


async def test_plain_commands_are_parsed_as_redis_py_parses_them(redis_client: Redis):
    batch = CommandBatch(redis_client)
    await redis_client.hset("sb:h", mapping={"a": "1", "b": "2"})
    got = await asyncio.gather(batch.command("HGETALL", "sb:h"), batch.command("HGETALL", "sb:none"),
                               batch.command("HGET", "sb:h", "a"))
    assert got == [{"a": "1", "b": "2"}, {}, "1"]


async def test_pipelines_are_capped(redis_client: Redis):
    batch, script = Recording(redis_client, max_batch=16), redis_client.register_script(INCR)
    await asyncio.gather(*(batch.script(script, ["sb:cap"], [1]) for _ in range(50)))
    assert max(batch.sent) == 16 and sum(batch.sent) == 50


async def test_a_failing_script_fails_only_its_caller(redis_client: Redis):
    batch = CommandBatch(redis_client)
    good = redis_client.register_script(INCR)
    bad = redis_client.register_script("return redis.error_reply('nope')")
    results = await asyncio.gather(batch.script(good, ["sb:e"], [1]), batch.script(bad, [], []),
                                   batch.script(good, ["sb:e"], [1]), return_exceptions=True)
    assert isinstance(results[1], ResponseError) and "nope" in str(results[1])
    assert sorted(results[::2]) == [1, 2]  # type: ignore[type-var]


async def test_scripts_are_loaded_again_after_the_server_forgets_them(redis_client: Redis):
    batch, script = CommandBatch(redis_client), redis_client.register_script(INCR)
    await redis_client.set("sb:f", 0)
    assert await batch.script(script, ["sb:f"], [2]) == 2
    await redis_client.script_flush()  # as after a restart
    again = await asyncio.gather(batch.script(script, ["sb:f"], [1]), batch.script(script, ["sb:f"], [1]))
    assert sorted(again) == [3, 4]


async def test_a_lost_connection_fails_the_waiting_callers_instead_of_hanging(redis_server: EmbeddedRedis):
    client = redis_pool(redis_server.url)
    batch, script = CommandBatch(client), client.register_script(INCR)
    await client.aclose()
    client.connection_pool.connection_kwargs["port"] = 1  # nothing listens there
    with pytest.raises(RedisConnectionError):
        await asyncio.wait_for(batch.script(script, ["sb:x"], [1]), 10)

