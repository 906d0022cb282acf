"""Pipelines in Redis: their specs and status, what their consumers report, the last dead letters and outputs.

Any gateway lists, inspects and stops any pipeline from here; consumers (on
Ray) only write their own stats and the two short "last N" lists. The layout is
in ``storage.keys``.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from storage._codec import dumps, loads
from storage.keys import DEFAULT_PREFIX, KeyLayout

#: dead letters and outputs kept for inspection (the topics hold them all)
KEEP_LAST = 50
#: a kept message's value is cut to this many characters: 50 messages of a megabyte each would sit in Redis
KEEP_VALUE_CHARS = 4096

# SET the supervisor's key if free, or extend it if this holder has it: one atomic step
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class PipelineStore:
    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.keys = KeyLayout(prefix)
        self._lead = redis.register_script(_LEAD)

    async def save(self, name: str, spec: dict[str, Any], source: str, consumers: int) -> None:
        """Record (or replace) a pipeline as running."""
        now = repr(time.time())
        key = self.keys.pipeline(name)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "created_at", now)
            pipe.hset(key, mapping={"spec": dumps(spec), "status": "running", "source": source,
                                    "consumers": consumers, "updated_at": now, "error": ""})
            pipe.sadd(self.keys.pipelines, name)
            await pipe.execute()

    async def get(self, name: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(self.keys.pipeline(name))
        return _record(name, raw) if raw else None

    async def all(self) -> list[dict[str, Any]]:
        names = sorted(await self.redis.smembers(self.keys.pipelines))
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self.keys.pipeline(name))
            raws = await pipe.execute()
        return [_record(n, raw) for n, raw in zip(names, raws, strict=True) if raw]

    async def update(self, name: str, **fields: str | int) -> None:
        await self.redis.hset(self.keys.pipeline(name), mapping={**fields, "updated_at": repr(time.time())})

    async def report(self, name: str, member: str, stats: dict[str, Any], ttl_s: float) -> None:
        await self.redis.set(self.keys.pipeline_stats(name, member), dumps(stats), px=max(1, int(ttl_s * 1000)))

    async def stats(self, name: str) -> list[dict[str, Any]]:
        """What each live consumer last reported, by member name."""
        keys = sorted([k async for k in self.redis.scan_iter(match=self.keys.pipeline_stats_pattern(name),
                                                             count=500)])
        values = await self.redis.mget(keys) if keys else []
        return [loads(v) for v in values if v]

    async def keep_last(self, name: str, *, dead: list[dict[str, Any]], outputs: list[dict[str, Any]]) -> None:
        """Push the newest dead letters and outputs, keeping :data:`KEEP_LAST` of each."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, items in ((self.keys.pipeline_dead(name), dead), (self.keys.pipeline_out(name), outputs)):
                if items:
                    pipe.lpush(key, *(dumps(_cut(i)) for i in items[-KEEP_LAST:]))
                    pipe.ltrim(key, 0, KEEP_LAST - 1)
            await pipe.execute()

    async def last(self, name: str, which: str, n: int) -> list[dict[str, Any]]:
        """The newest ``n`` dead letters (``which="dead"``) or outputs (``"out"``), newest first."""
        key = self.keys.pipeline_dead(name) if which == "dead" else self.keys.pipeline_out(name)
        return [loads(v) for v in await self.redis.lrange(key, 0, max(0, n - 1))]

    async def lead(self, holder: str, ttl_s: float) -> bool:
        """Take or keep the supervisor's role for ``ttl_s``; False while another gateway holds it."""
        return bool(await self._lead(keys=[self.keys.pipeline_supervisor], args=[holder, int(ttl_s * 1000)]))


def _record(name: str, raw: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "spec": loads(raw.get("spec")), "status": raw.get("status", "stopped"),
            "source": raw.get("source", "api"), "consumers": int(raw.get("consumers") or 0),
            "partitions": int(raw.get("partitions") or 0),
            "created_at": float(raw.get("created_at") or 0), "updated_at": float(raw.get("updated_at") or 0),
            "error": raw.get("error") or None}


def _cut(item: dict[str, Any]) -> dict[str, Any]:
    """The item with its ``value`` cut to :data:`KEEP_VALUE_CHARS` (saying so, and how long it was)."""
    value = item.get("value")
    if not isinstance(value, str) or len(value) <= KEEP_VALUE_CHARS:
        return item
    return {**item, "value": value[:KEEP_VALUE_CHARS], "value_chars": len(value), "truncated": True}
