"""Algorithms' limits changed at run time, kept so every gateway (and a restarted one) applies them.

The registry file declares each algorithm's limits; an operator changes them
while it runs. The change lives here, keyed by algorithm, until it is reset,
and a short log says who changed what and when. The layout is in
``storage.keys``.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from storage._codec import dumps, loads
from storage.keys import DEFAULT_PREFIX, KeyLayout

#: changes kept in the log
KEEP_LAST = 100


class LimitStore:
    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.keys = KeyLayout(prefix)

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every algorithm's changed limits."""
        return {name: loads(raw) for name, raw in (await self.redis.hgetall(self.keys.limits)).items()}

    async def save(self, name: str, limits: dict[str, Any], change: dict[str, Any], by: str) -> None:
        """Record an algorithm's limits as they now differ from the file (none: back to the file), and the change."""
        entry = dumps({"algorithm": name, "change": change, "by": by, "at": time.time()})
        async with self.redis.pipeline(transaction=True) as pipe:
            if limits:
                pipe.hset(self.keys.limits, name, dumps(limits))
            else:
                pipe.hdel(self.keys.limits, name)
            pipe.lpush(self.keys.limits_log, entry)
            pipe.ltrim(self.keys.limits_log, 0, KEEP_LAST - 1)
            await pipe.execute()

    async def log(self, name: str | None = None, count: int = 20) -> list[dict[str, Any]]:
        """The last changes, newest first (of one algorithm, when named)."""
        entries = [loads(raw) for raw in await self.redis.lrange(self.keys.limits_log, 0, KEEP_LAST - 1)]
        return [e for e in entries if name is None or e["algorithm"] == name][:count]
