"""Who is alive: gateways and task workers each keep a key with a TTL (``{prefix}:heartbeat:{id}``).

Kept apart from tasks (as arq keeps health checks apart from jobs): a worker
beats whether or not it runs tasks, and ``/healthz`` lists the live ones. The
heartbeat's value is the beat's time in unix seconds, as the seed Ray Service
wrote it (its dashboards read ``float(value)``); what else is known of the
worker sits beside it in ``{prefix}:worker:{id}``. Worker ids hold no ``:``
(those dashboards take the id as the key's last part).
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
        if ":" in worker_id:
            raise ValueError(f"worker id {worker_id!r}: no ':' (dashboards split heartbeat keys on it)")
        ttl_ms = max(1, int(ttl_s * 1000))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.heartbeat(worker_id), repr(time.time()), px=ttl_ms)
            pipe.set(self.keys.worker(worker_id), dumps(dict(info)), px=ttl_ms)
            await pipe.execute()

    async def live(self) -> list[dict[str, Any]]:
        """Every worker whose heartbeat has not expired, by id: ``{worker_id, beat_at, **info}``."""
        keys = sorted([k async for k in self.redis.scan_iter(match=self.keys.heartbeat_pattern, count=500)])
        if not keys:
            return []
        ids = [key.rsplit(":", 1)[-1] for key in keys]
        beats = await self.redis.mget(keys)
        infos = await self.redis.mget([self.keys.worker(i) for i in ids])
        return [{**json.loads(info or "{}"), "worker_id": i, "beat_at": float(beat)}
                for i, beat, info in zip(ids, beats, infos, strict=True) if beat]
