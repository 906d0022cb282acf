"""The seed's module-level Actorless API (``invoke``, ``delete``, ``get``, ``list``), over the actors of
the runtime running in this process; awaited, since algo-mcp is asynchronous throughout::

    account = await Account.bind("account1", name="Alice", balance=100)
    await invoke("account1", "deposit", 50)          # 150
    await invoke("account1", "deposit", 5, is_sync=False)   # fire and forget
    await delete("account1")
"""

from __future__ import annotations

import asyncio
from typing import Any

from engines.actors.client import Actors
from engines.errors import NotConfigured
from storage.actors import ActorRecord

_current: Actors | None = None
_fired: set[asyncio.Task] = set()  # fire-and-forget calls, kept until they end


def use(actors: Actors | None) -> None:
    """Called by the runtime as it starts (and stops)."""
    global _current
    _current = actors


def _actors() -> Actors:
    if _current is None:
        raise NotConfigured("no algo-mcp runtime runs in this process; actors need one (a gateway, or Runtime)")
    return _current


async def bind(template: str, unique_id: str, *args: Any, options: dict[str, Any] | None = None,
               **kwargs: Any) -> ActorRecord:
    return await _actors().bind(template, unique_id, args, kwargs, options)


async def invoke(actor_id: str, method: str, *args: Any, keep_alive: bool = False, is_sync: bool = True,
                 **kwargs: Any) -> Any:
    """The method's result; with ``is_sync=False`` the call is sent and None returned at once."""
    call = _actors().invoke(actor_id, method, args, kwargs, keep_alive=keep_alive)
    if is_sync:
        return await call
    task = asyncio.ensure_future(call)
    _fired.add(task)
    task.add_done_callback(_fired.discard)
    return None


async def delete(actor_id: str) -> bool:
    return await _actors().delete(actor_id)


async def get(actor_id: str) -> ActorRecord:
    return await _actors().get(actor_id)


async def list(template: str | None = None, limit: int = 100) -> list[ActorRecord]:  # the seed's name
    return await _actors().recent(template, limit)
