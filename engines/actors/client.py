"""Actors from the gateway's side: bind, invoke, inspect, delete (the seed's Actorless API).

Binding, reading and listing are Redis only; calls go to the actor's host
(``engines.actors.pools``), which the runtime connects once it has started the
pools. Ray is imported only there, so building the gateway stays quick.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engines.actors.template import ActorTemplate
from engines.errors import AlreadyBound, Unavailable, UnknownActor, UnknownAlgorithm, ValidationFailed
from storage.actors import ActorRecord, ActorStore

#: what an actor id may be (the seed's ids, like "account1", fit)
ACTOR_ID_PATTERN, ACTOR_ID_MAX_LENGTH = r"^[A-Za-z0-9][A-Za-z0-9_.:@-]*$", 128
_ACTOR_ID = re.compile(ACTOR_ID_PATTERN)


def check_actor_id(actor_id: Any) -> str:
    if not isinstance(actor_id, str):
        raise ValidationFailed([f"actor_id: must be a string (got {type(actor_id).__name__})"])
    if not 1 <= len(actor_id) <= ACTOR_ID_MAX_LENGTH or not _ACTOR_ID.match(actor_id):
        raise ValidationFailed([f"actor_id: 1 to {ACTOR_ID_MAX_LENGTH} characters matching {ACTOR_ID_PATTERN} "
                                f"(got {actor_id[:40]!r})"])
    return actor_id

if TYPE_CHECKING:
    from engines.actors.pools import HostCalls, Pool


class Actors:
    """The gateway's actor operations; calls work once the runtime has connected the host pools."""

    def __init__(self, templates: Mapping[str, ActorTemplate]) -> None:
        self.templates = dict(templates)
        self._store: ActorStore | None = None
        self._pools: dict[str, Pool] = {}
        self._hosts: HostCalls | None = None

    def open(self, store: ActorStore) -> None:
        """Redis is up: binding, reading and listing work from here."""
        self._store = store

    def connect(self, hosts: HostCalls, pools: Sequence[Pool]) -> None:
        """The pools run: calls work from here."""
        self._hosts, self._pools = hosts, {name: p for p in pools for name in p.templates}

    @property
    def store(self) -> ActorStore:
        if self._store is None:
            raise Unavailable("actors are starting; retry shortly")
        return self._store

    def template(self, name: str) -> ActorTemplate:
        try:
            return self.templates[name]
        except KeyError:
            raise UnknownAlgorithm(name, list(self.templates)) from None

    async def bind(self, template: str, actor_id: str, args: Sequence[Any] = (),
                   kwargs: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None) -> ActorRecord:
        """Record an actor (nothing runs until its first call); binding again the same way is a no-op."""
        t = self.template(template)
        check_actor_id(actor_id)
        plain_args, plain_kwargs = t.construct_arguments(list(args), dict(kwargs or {}))
        outcome, bound_to = await self.store.bind(actor_id, t.name, plain_args, plain_kwargs, dict(options or {}))
        if outcome == "conflict":
            what = "other arguments" if bound_to == t.name else f"template {bound_to!r}"
            raise AlreadyBound(f"actor {actor_id!r} is already bound, to {what}; delete it first to bind it again")
        return await self.get(actor_id)

    async def get(self, actor_id: str) -> ActorRecord:
        record = await self.store.get(check_actor_id(actor_id))
        if record is None:
            raise UnknownActor(actor_id)
        return record

    async def recent(self, template: str | None = None, limit: int = 100) -> list[ActorRecord]:
        return await self.store.recent(template, limit)

    async def invoke(self, actor_id: str, method: str, args: Sequence[Any] = (),
                     kwargs: Mapping[str, Any] | None = None, *, keep_alive: bool = False,
                     template: str | None = None) -> Any:
        """Run ``method`` on the actor, where it is active or its pool's hash says; its JSON result."""
        bound_to, holder = await self.store.route(check_actor_id(actor_id))
        if bound_to is None:
            raise UnknownActor(actor_id)
        if template is not None and template != bound_to:
            raise UnknownActor(f"{actor_id} (it is a {bound_to}, not a {template})")
        pool, hosts = self._pool(bound_to)
        m = self.template(bound_to).method(method)  # a wrong name fails here, naming the template's methods
        m.arguments(args, dict(kwargs or {}), f"{bound_to}.{method}")  # and bad arguments, before any host
        return await hosts.call(holder or pool.host_for(actor_id), actor_id, method, list(args), dict(kwargs or {}),
                                uuid.uuid4().hex, keep_alive)

    async def delete(self, actor_id: str) -> bool:
        """End the actor wherever it is active, and its state; False if the id was not bound."""
        bound_to, holder = await self.store.route(check_actor_id(actor_id))
        if bound_to is None:
            return False
        pool, hosts = self._pool(bound_to)
        return await hosts.delete(holder or pool.host_for(actor_id), actor_id)

    async def passivate(self, actor_id: str) -> bool:
        """Checkpoint the actor and drop it from its host's memory now; False if it was not active."""
        host = await self.store.holder(check_actor_id(actor_id))
        if host is None or self._hosts is None:
            return False
        return await self._hosts.passivate(host, actor_id)

    async def hosts(self, template: str) -> list[dict[str, Any]]:
        """The status of each host of the template's pool (process, memory, what it holds)."""
        pool, hosts = self._pool(self.template(template).name)
        return list(await asyncio.gather(*(hosts.status(h) for h in pool.hosts)))

    async def live(self, actor_id: str) -> dict[str, Any] | None:
        """The actor's in-memory state where it is active; None when it is passivated."""
        host = await self.store.holder(actor_id)
        if host is None or self._hosts is None:
            return None
        return await self._hosts.activation(host, actor_id)

    def _pool(self, template: str) -> tuple[Pool, HostCalls]:
        pool = self._pools.get(template)
        if pool is None or self._hosts is None:
            raise Unavailable(f"the hosts of template {template!r} are not running (yet); retry shortly")
        return pool, self._hosts
