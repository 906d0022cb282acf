"""Send concurrent Redis calls together: one pipeline per round trip.

A task worker under load claims and ends dozens of tasks at once, and a
gateway submits and reads many at once; sent one by one, every call pays a
round trip, a pool checkout and its own socket write. Here calls queue up
while one pipeline is in flight and all go in the next, so a busy client
sends few large pipelines and an idle one still sends its first call at once
(no timer, no added latency). Each call keeps its own reply or error: one
failing call fails only its caller. Blocking commands must not come here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

MAX_BATCH = 256

_Call = tuple[tuple[Any, ...], AsyncScript | None, asyncio.Future]


class CommandBatch:
    """``await batch.command("HGETALL", key)`` or ``await batch.script(script, keys, args)``, sent with
    their neighbours."""

    def __init__(self, redis: Redis, max_batch: int = MAX_BATCH) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._queue: list[_Call] = []
        self._sender: asyncio.Task | None = None

    async def command(self, *args: Any) -> Any:
        """A command's reply, parsed as ``redis.<command>(...)`` would parse it."""
        return await self._call(args, None)

    async def script(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Like ``script(keys, args)``; a server that lost its script cache gets the script again."""
        return await self._call(("EVALSHA", script.sha, len(keys), *keys, *args), script)

    async def _call(self, args: tuple[Any, ...], script: AsyncScript | None) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._queue.append((args, script, future))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_all())
        return await future

    async def _send_all(self) -> None:
        while self._queue:
            calls, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch:]
            try:
                replies = await self._send(calls)
            except BaseException as exc:  # connection lost, or this task cancelled: fail the callers, not hang
                error = exc if isinstance(exc, Exception) else ConnectionError(str(exc))
                for *_, future in calls:
                    _settle(future, error)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (*_, future), reply in zip(calls, replies, strict=True):
                _settle(future, reply)

    async def _send(self, calls: list[_Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for args, _, _ in calls:
                pipe.execute_command(*args)
            replies = await pipe.execute(raise_on_error=False)
        # A server that lost its script cache (a restart): load and run those calls again, one by one.
        for i, (args, script, _) in enumerate(calls):
            if isinstance(replies[i], NoScriptError) and script is not None:
                nkeys = args[2]
                try:
                    replies[i] = await script(keys=args[3:3 + nkeys], args=args[3 + nkeys:])
                except Exception as exc:
                    replies[i] = exc
        return replies


def _settle(future: asyncio.Future, reply: Any) -> None:
    """Hand a caller its reply, unless it was cancelled meanwhile."""
    if future.done():
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)
