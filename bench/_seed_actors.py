"""The Actorless seed's design, rebuilt for the actors bench (its baseline).

As the seed (IULeen/RayPlus) runs it: each actor id is its own Ray actor process,
started on its first call; a budget of resident actors, past which the least
recently used is released, its state pickled to Redis; an actor started again
loads it back; an HTTP front that serves one request at a time (the seed's
handlers call ``ray.get`` synchronously). The class it hosts is the same
``GamePlayer`` algo-mcp hosts.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from collections import OrderedDict
from typing import Any

import ray
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@ray.remote(num_cpus=0)
class SeedActor:
    """One actor id, one process."""

    def __init__(self, player_id: str, items: int, state: bytes | None) -> None:
        from engines.builtin.game_player import GamePlayer

        self.template = GamePlayer
        self.instance = GamePlayer.instantiate([player_id], {"items": items}, None)
        if state is not None:
            self.instance.__dict__.update(pickle.loads(state))

    def call(self, method: str, kwargs: dict[str, Any]) -> Any:
        m = self.template.method(method)
        return m.output.dump_python(self.template.bound_call(self.instance, m)(**m.arguments([], kwargs, method)),
                                    mode="json")

    def release(self) -> bytes:
        return pickle.dumps(vars(self.instance))

    def rss_bytes(self) -> int:
        """This actor's process's resident memory: what an active actor costs in this design."""
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class SeedFront:
    """LRU residency under ``budget`` and one request at a time, as the seed's front serves them."""

    def __init__(self, redis: Redis, budget: int, items: int) -> None:
        self.redis, self.budget, self.items = redis, budget, items
        self.resident: OrderedDict[str, Any] = OrderedDict()
        self.one_at_a_time = asyncio.Lock()

    async def invoke(self, actor_id: str, method: str, kwargs: dict[str, Any]) -> Any:
        async with self.one_at_a_time:
            handle = self.resident.pop(actor_id, None)
            if handle is None:
                while len(self.resident) >= self.budget:
                    _, evicted = self.resident.popitem(last=False)
                    await self._release(evicted)
                state = await self.redis.get(f"seed:{actor_id}".encode())
                handle = SeedActor.remote(actor_id, self.items, state)
            self.resident[actor_id] = handle
            return await handle.call.remote(method, kwargs)

    async def _release(self, handle: Any) -> None:
        state = await handle.release.remote()
        await self.redis.set(f"seed:{pickle.loads(state)['player_id']}".encode(), state)
        ray.kill(handle)

    def app(self) -> Starlette:
        async def invoke(request: Request) -> JSONResponse:
            body = await request.json()
            return JSONResponse({"result": await self.invoke(body["actor_id"], body["func_name"], body["params"])})

        return Starlette(routes=[Route("/invoke", invoke, methods=["POST"])])

    async def close(self) -> None:
        for handle in self.resident.values():
            ray.kill(handle)
        self.resident.clear()
