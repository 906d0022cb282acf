"""Actor records in Redis: bindings, state, and the lease that keeps each actor active in one place.

Shaped like :mod:`storage.tasks`: an ``ActorRecord`` dataclass and one
``ActorStore`` that is the only code issuing Redis commands for actors; the
scripts that must be atomic (binding, taking a lease, a fenced state write,
delete) are in :mod:`storage._actor_scripts`. State is JSON text here, or a
pointer (``state_ref``) to an object-store key when it is large; which, is the
caller's choice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from storage import _actor_scripts as scripts
from storage._codec import as_mapping, dumps, loads, to_float
from storage.command_batch import CommandBatch
from storage.keys import DEFAULT_PREFIX, KeyLayout

Bound = Literal["bound", "same", "conflict"]
#: a writing call's result is kept this long, for a retry of the call whose answer was lost
RECALL_S = 300


@dataclass(frozen=True)
class ActorRecord:
    """One bound actor, as stored in ``{prefix}:actor:{id}`` (JSON fields decoded)."""

    actor_id: str
    template: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    bound_at: float
    version: int = 0  # checkpoints written so far
    calls: int = 0  # calls acknowledged (counted at each checkpoint)
    state: Any = None  # the state when it is kept in Redis
    state_ref: str | None = None  # or the object-store key it is kept under
    state_bytes: int = 0
    checkpointed_at: float | None = None
    last_call_at: float | None = None

    @property
    def tier(self) -> str:
        """Where its state is kept between activations."""
        if self.state_ref:
            return "object store"
        return "redis" if self.version else "none yet"

    def public(self) -> dict[str, Any]:
        """What a caller may see of the record (its state is read apart: it may be large)."""
        return {"actor_id": self.actor_id, "template": self.template, "args": self.args, "kwargs": self.kwargs,
                "options": self.options, "bound_at": self.bound_at, "version": self.version, "calls": self.calls,
                "tier": self.tier, "state_bytes": self.state_bytes, "checkpointed_at": self.checkpointed_at,
                "last_call_at": self.last_call_at}

    @classmethod
    def from_hash(cls, h: Mapping[str, str]) -> ActorRecord:
        return cls(actor_id=h["actor_id"], template=h["template"], args=loads(h.get("args")) or [],
                   kwargs=loads(h.get("kwargs")) or {}, options=loads(h.get("options")) or {},
                   bound_at=float(h.get("bound_at") or 0), version=int(h.get("version") or 0),
                   calls=int(h.get("calls") or 0), state=_state(h.get("state")), state_ref=h.get("state_ref"),
                   state_bytes=int(h.get("state_bytes") or 0), checkpointed_at=to_float(h.get("checkpointed_at")),
                   last_call_at=to_float(h.get("last_call_at")))


def _state(text: str | None) -> Any:
    """Actor state is read with orjson: a 300 KB state decodes in half the time ``json`` takes."""
    return None if text is None else orjson.loads(text)


def _host_name(lease: str | None) -> str | None:
    """A lease's value is ``{host name}/{incarnation} {token}``."""
    return lease.split(" ", 1)[0].split("/", 1)[0] if lease else None


@dataclass(frozen=True)
class Held:
    """This host holds the actor's lease under ``token``; ``record`` is what to activate it from."""

    token: str
    record: ActorRecord


@dataclass(frozen=True)
class Elsewhere:
    """Another host holds the actor's lease: calls go there."""

    host: str


@dataclass(frozen=True)
class Checkpointed:
    version: int
    replaced_ref: str | None  # an object-store state the write made obsolete (delete it)


class ActorStore:
    """Every Redis operation on actors. ``redis`` must decode responses (``storage.redis_pool``)."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.keys = KeyLayout(prefix)
        s = redis.register_script
        self._bind, self._acquire, self._renew = s(scripts.BIND), s(scripts.ACQUIRE), s(scripts.RENEW)
        self._checkpoint, self._release, self._delete = s(scripts.CHECKPOINT), s(scripts.RELEASE), s(scripts.DELETE)
        self._batch = CommandBatch(redis)

    def _keys(self, actor_id: str) -> list[str]:
        k = self.keys
        return [k.actor(actor_id), k.actors, k.actor_lease(actor_id), k.actor_fence, k.actor_calls(actor_id),
                k.actor_call_times(actor_id), k.actor_stats]

    async def _run(self, script: AsyncScript, actor_id: str, *args: Any) -> Any:
        return await self._batch.script(script, self._keys(actor_id), [str(a) for a in args])

    async def bind(self, actor_id: str, template: str, args: list[Any], kwargs: dict[str, Any],
                   options: Mapping[str, Any]) -> tuple[Bound, str]:
        """Record an actor without starting it; binding again with the same arguments is a no-op.
        Returns what happened and the template the id is bound to."""
        code, bound_to = await self._run(self._bind, actor_id, actor_id, template, dumps(args), dumps(kwargs),
                                         dumps(dict(options)))
        return {1: "bound", 0: "same", -1: "conflict"}[int(code)], bound_to

    async def get(self, actor_id: str) -> ActorRecord | None:
        h = await self._batch.command("HGETALL", self.keys.actor(actor_id))
        return ActorRecord.from_hash(h) if h else None

    async def recent(self, template: str | None = None, limit: int = 100) -> list[ActorRecord]:
        """Newest bindings first, optionally of one template."""
        found: list[ActorRecord] = []
        start, page = 0, max(limit, 100)
        while len(found) < limit:
            ids = await self.redis.zrevrange(self.keys.actors, start, start + page - 1)
            if not ids:
                break
            start += len(ids)
            async with self.redis.pipeline(transaction=False) as pipe:
                for actor_id in ids:
                    pipe.hgetall(self.keys.actor(actor_id))
                hashes = await pipe.execute()
            found += [r for r in (ActorRecord.from_hash(h) for h in hashes if h) if template in (None, r.template)]
        return found[:limit]

    async def count(self) -> int:
        return int(await self.redis.zcard(self.keys.actors))

    async def activations(self) -> dict[str, int]:
        """Activations so far, by template (every host's, from Redis: for metrics)."""
        return {name.removeprefix("activations:"): int(n)
                for name, n in (await self.redis.hgetall(self.keys.actor_stats)).items()
                if name.startswith("activations:")}

    async def acquire(self, actor_id: str, host: str, lease_s: float) -> Held | Elsewhere | None:
        """Take (or renew) the actor's lease for ``host``; None if the id is not bound."""
        reply = await self._run(self._acquire, actor_id, host, int(lease_s * 1000))
        if int(reply[0]) == -1:
            return None
        if int(reply[0]) == 0:
            return Elsewhere(reply[1])
        return Held(str(reply[1]), ActorRecord.from_hash(as_mapping(reply[2])))

    async def renew(self, actor_id: str, host: str, token: str, lease_s: float) -> bool:
        return int(await self._run(self._renew, actor_id, host, token, int(lease_s * 1000))) == 1

    async def checkpoint(self, actor_id: str, host: str, token: str, *, state: str | None = None,
                         state_ref: str | None = None, size: int,
                         calls: Mapping[str, Any]) -> Checkpointed | None:
        """Write the actor's state (JSON text, or the key of an object holding it) and the results of the
        ``calls`` (call id → result) it acknowledges, if ``host`` still holds its lease under ``token``;
        None when it does not (nothing is written)."""
        pairs = [x for call_id, result in calls.items() for x in (call_id, dumps(result))]
        reply = await self._run(self._checkpoint, actor_id, host, token, state or "", state_ref or "", size,
                                RECALL_S, *pairs)
        if int(reply[0]) == 0:
            return None
        return Checkpointed(int(reply[1]), reply[2] or None)

    async def recall(self, actor_id: str, call_id: str) -> tuple[bool, Any]:
        """Whether the call was acknowledged (within ``RECALL_S``), and its result."""
        text = await self._batch.command("HGET", self.keys.actor_calls(actor_id), call_id)
        return (False, None) if text is None else (True, loads(text))

    async def release(self, actor_id: str, host: str, token: str) -> bool:
        return int(await self._run(self._release, actor_id, host, token)) == 1

    async def holder(self, actor_id: str) -> str | None:
        """The name of the host the actor is active on now (without its incarnation), if any."""
        return _host_name(await self._batch.command("GET", self.keys.actor_lease(actor_id)))

    async def route(self, actor_id: str) -> tuple[str | None, str | None]:
        """What a call needs, in one round trip and without the state: the actor's template (None if
        the id is not bound) and the host it is active on (None if nowhere)."""
        template, lease = await asyncio.gather(self._batch.command("HGET", self.keys.actor(actor_id), "template"),
                                               self._batch.command("GET", self.keys.actor_lease(actor_id)))
        return template, _host_name(lease)

    async def delete(self, actor_id: str) -> str | Literal[False] | None:
        """Remove the actor and its lease; the object-store key of its state to delete (None if it had
        none), or False if the id was not bound."""
        reply = await self._run(self._delete, actor_id, actor_id)
        if reply == -1:
            return False
        return reply or None

