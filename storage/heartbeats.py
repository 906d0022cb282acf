"""Who is alive: gateways and task workers each keep a key with a TTL (``{prefix}:heartbeat:{id}``).

Kept apart from tasks (as arq keeps health checks apart from jobs): a worker
beats whether or not it runs tasks, and ``/healthz`` lists the live ones.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from storage._codec import dumps
from storage.keys import DEFAULT_PREFIX, KeyLayout


class Heartbeats:
    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.keys = KeyLayout(prefix)

    async def beat(self, worker_id: str, info: Mapping[str, Any], ttl_s: float) -> None:
        """Say this worker is alive for ``ttl_s`` more seconds."""
        data = {**info, "worker_id": worker_id, "beat_at": time.time()}
        await self.redis.set(self.keys.heartbeat(worker_id), dumps(data), px=max(1, int(ttl_s * 1000)))

    async def live(self) -> list[dict[str, Any]]:
        """Every worker whose heartbeat has not expired, by id."""
        keys = [k async for k in self.redis.scan_iter(match=self.keys.heartbeat_pattern, count=500)]
        values = await self.redis.mget(keys) if keys else []
        workers = [json.loads(v) for v in values if v]
        return sorted(workers, key=lambda w: str(w.get("worker_id")))
