"""An actor host: one Ray actor process that keeps many virtual actors active (not a process per id).

A call activates its actor here on first use: the host takes the actor's lease
(one activation anywhere; a fencing token per activation), replays the
constructor with the bound arguments and restores the state (from Redis, or the
object store when large). Calls on one actor run one at a time in arrival order
(read-only methods overlap). After a writing call the state is checkpointed by
the template's policy, fenced by the token, so a host that lost the actor can
never overwrite a newer activation's state; each call carries an id and its
result is written with the state it produced, so a call retried after its
answer was lost (its host killed) returns the recorded result instead of
running twice.
Idle actors are passivated (checkpoint, give the lease up, forget), the least
recently used first when the host holds too many.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from engines.actors.persistence import Persistence
from engines.actors.template import TEMPLATES, ActorTemplate, Method
from engines.collector import collect_on_schedule
from engines.config import StoreConfig
from engines.errors import ActiveElsewhere, ActorCallFailed, AlgoError, LeaseLost, NotConfigured, UnknownActor
from engines.loops import every
from storage import redis_pool
from storage.actors import ActorStore, Elsewhere, Held

log = logging.getLogger(__name__)
HOUSEKEEPING_S = 0.25  # how often a host looks for due checkpoints and idle actors

@dataclass(frozen=True)
class HostConfig:
    """What every host of a pool is started with."""

    store: StoreConfig
    modules: tuple[str, ...]  # imported so their @actorless templates are known here
    lease_s: float = 10.0
    max_active: int = 5000
    state_inline_bytes: int = 1024 * 1024  # larger states go to the object store
    state_budget_bytes: int = 2**30  # the active actors' state (as last written) a host keeps
    persistence: tuple[tuple[str, Persistence], ...] = ()  # the registry's overrides, by template name


class CallOrder:
    """Calls on one actor: writers one at a time, readers together, all in arrival order."""

    def __init__(self) -> None:
        self._readers = 0
        self._writing = False
        self._waiting: deque[tuple[bool, asyncio.Future[None]]] = deque()

    def _free(self, read_only: bool) -> bool:
        return not self._writing and (read_only or self._readers == 0)

    def _take(self, read_only: bool) -> None:
        if read_only:
            self._readers += 1
        else:
            self._writing = True

    def _give(self, read_only: bool) -> None:
        if read_only:
            self._readers -= 1
        else:
            self._writing = False
        while self._waiting and self._free(self._waiting[0][0]):
            read, waiter = self._waiting.popleft()
            self._take(read)
            waiter.set_result(None)

    @asynccontextmanager
    async def hold(self, read_only: bool) -> AsyncIterator[None]:
        if self._waiting or not self._free(read_only):
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append((read_only, waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done():  # granted just as it was cancelled: pass it on
                    self._give(read_only)
                else:
                    self._waiting.remove((read_only, waiter))
                raise
        else:
            self._take(read_only)
        try:
            yield
        finally:
            self._give(read_only)


@dataclass
class Activation:
    actor_id: str
    template: ActorTemplate
    instance: Any
    token: str
    keep_alive: bool = False
    unsaved: dict[str, Any] = field(default_factory=dict)  # writing calls since the last checkpoint: id → result
    unsaved_since: float = 0.0  # when the first of them ran (monotonic)
    state_bytes: int = 0  # its state's size as last written: what it weighs against the host's budget
    last_used: float = field(default_factory=time.monotonic)
    gone: bool = False  # passivated, deleted or lost: the next call activates anew
    order: CallOrder = field(default_factory=CallOrder)


class ActorHost:
    """Hosts activations; the gateway's client routes each id to one host (and follows its lease)."""

    def __init__(self, config: HostConfig, name: str) -> None:
        for module in config.modules:
            importlib.import_module(module)
        self.config = config
        collect_on_schedule()  # a host's heap is its actors' state: no full collection under load
        self.templates = {**TEMPLATES, **{name: replace(TEMPLATES[name], persistence=p)
                                          for name, p in config.persistence}}
        self.host_id = f"{name}/{uuid.uuid4().hex[:8]}"  # an incarnation: a restarted host takes its leases over
        self._active: dict[str, Activation] = {}
        self._state_bytes = 0  # of the active actors, as last written
        self._activating: dict[str, asyncio.Future[Activation]] = {}
        self._store: ActorStore | None = None
        self._loops: list[asyncio.Task] = []

    def _started(self) -> ActorStore:
        """Redis and the background loops, made in the actor's own event loop on first use."""
        if self._store is None:
            self._store = ActorStore(redis_pool(self.config.store.redis_url), prefix=self.config.store.prefix)
            self._objects = self.config.store.objects.open()
            self._loops = [asyncio.create_task(every(self.config.lease_s / 3, self._renew, what="actor leases")),
                           asyncio.create_task(every(HOUSEKEEPING_S, self._housekeeping, what="actor housekeeping"))]
        return self._store

    # -- calls ------------------------------------------------------------------

    async def call(self, actor_id: str, method: str, args: list[Any], kwargs: dict[str, Any], call_id: str,
                   keep_alive: bool = False, retry: bool = False) -> Any:
        """Run ``method`` on the actor (activating it here if it is nowhere); its JSON result.

        ``retry``: the call was sent before and its answer lost; if it was acknowledged then, its
        recorded result is the answer (it does not run twice)."""
        while True:
            act = await self._activation(actor_id)
            m = act.template.method(method)
            arguments = m.arguments(args, kwargs, f"{act.template.name}.{method}")
            async with act.order.hold(m.read_only):
                if act.gone:
                    continue  # passivated or lost while this call waited: activate again
                if retry and not m.read_only:
                    done, result = await self._started().recall(actor_id, call_id)
                    if done:
                        return result
                act.keep_alive = act.keep_alive or keep_alive
                result = await self._run(act, m, arguments)
                if not m.read_only:
                    if not act.unsaved:
                        act.unsaved_since = time.monotonic()
                    act.unsaved[call_id] = result
                    if act.template.persistence.after_call(len(act.unsaved)):
                        await self._checkpoint(act)
                return result

    async def _run(self, act: Activation, m: Method, arguments: dict[str, Any]) -> Any:
        try:
            value = act.template.bound_call(act.instance, m)(**arguments)
            if asyncio.iscoroutine(value):
                value = await value
            result = m.output.dump_python(value, mode="json")
        except AlgoError:
            self._forget(act)
            raise
        except Exception as exc:  # the actor's own code: its state may be half changed, so reload it
            if not m.read_only:
                self._forget(act)
            raise ActorCallFailed(f"{act.template.name}.{m.name} raised {type(exc).__name__}: {exc}") from None
        act.last_used = time.monotonic()
        return result

    # -- activation and checkpoints ---------------------------------------------

    async def _activation(self, actor_id: str) -> Activation:
        act = self._active.get(actor_id)
        if act is not None and not act.gone:
            return act
        pending = self._activating.get(actor_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Activation] = asyncio.get_running_loop().create_future()
        self._activating[actor_id] = future
        try:
            act = await self._activate(actor_id)
            future.set_result(act)
            return act
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: other waiters get it
            raise
        finally:
            del self._activating[actor_id]

    async def _activate(self, actor_id: str) -> Activation:
        store = self._started()
        got = await store.acquire(actor_id, self.host_id, self.config.lease_s)
        if got is None:
            raise UnknownActor(actor_id)
        if isinstance(got, Elsewhere):
            raise ActiveElsewhere(actor_id, got.host.split("/", 1)[0])
        assert isinstance(got, Held)
        record = got.record
        template = self.templates.get(record.template)
        if template is None:
            await store.release(actor_id, self.host_id, got.token)
            raise NotConfigured(f"actor {actor_id!r}: this host does not know template {record.template!r}")
        state = record.state
        if record.state_ref:
            data, _ = await self._objects.get(record.state_ref)
            state = orjson.loads(data)
        act = Activation(actor_id, template, template.instantiate(record.args, record.kwargs, state), got.token,
                         keep_alive=bool(record.options.get("is_always_alive")), state_bytes=record.state_bytes)
        self._active[actor_id] = act
        self._state_bytes += act.state_bytes
        await self._make_room(keep=act)
        return act

    async def _checkpoint(self, act: Activation) -> None:
        """Write the state under the activation's token; a host that lost the lease writes nothing."""
        store = self._started()
        data = act.template.state_json(act.instance)
        ref = None
        if len(data) > self.config.state_inline_bytes:
            ref = f"actors/{act.actor_id}/state-{uuid.uuid4().hex}.json"
            await self._objects.put(ref, data, "application/json")
        written = await store.checkpoint(act.actor_id, self.host_id, act.token,
                                         state=None if ref else data.decode(), state_ref=ref, size=len(data),
                                         calls=act.unsaved)
        if written is None:
            if ref:
                await self._objects.delete(ref)
            self._forget(act)
            raise LeaseLost(act.actor_id)
        act.unsaved = {}
        self._state_bytes += len(data) - act.state_bytes
        act.state_bytes = len(data)
        if written.replaced_ref:
            await self._objects.delete(written.replaced_ref)

    def _forget(self, act: Activation) -> None:
        act.gone = True
        if self._active.get(act.actor_id) is act:
            del self._active[act.actor_id]
            self._state_bytes -= act.state_bytes

    async def passivate(self, actor_id: str) -> bool:
        """Checkpoint the actor if it has unsaved calls, give its lease up, and drop it from memory."""
        act = self._active.get(actor_id)
        if act is None:
            return False
        async with act.order.hold(read_only=False):
            if act.gone:
                return False
            if act.unsaved:
                await self._checkpoint(act)
            self._forget(act)
            await self._started().release(actor_id, self.host_id, act.token)
        return True

    async def close(self) -> None:
        """Retire this host: passivate every actor (checkpointing what is unsaved), stop the loops."""
        for actor_id in list(self._active):
            await self.passivate(actor_id)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def delete(self, actor_id: str) -> bool:
        """End the actor: its activation here, its record, lease and stored state; False if unbound."""
        act = self._active.get(actor_id)
        if act is not None:
            async with act.order.hold(read_only=False):
                self._forget(act)
        ref = await self._started().delete(actor_id)
        if ref is False:
            return False
        if ref:
            await self._objects.delete(ref)
        return True

    # -- housekeeping -----------------------------------------------------------

    async def _make_room(self, keep: Activation | None = None) -> None:
        """Past ``max_active`` actors or ``state_budget_bytes`` of state, passivate the least recently
        used (never a kept-alive one, nor ``keep``, the one just activated)."""
        over = len(self._active) - self.config.max_active, self._state_bytes - self.config.state_budget_bytes
        if over[0] <= 0 and over[1] <= 0:
            return
        count, size = over
        for act in sorted((a for a in self._active.values() if not a.keep_alive and a is not keep),
                          key=lambda a: a.last_used):
            if count <= 0 and size <= 0:
                break
            count, size = count - 1, size - act.state_bytes
            await self.passivate(act.actor_id)

    async def _housekeeping(self) -> None:
        """Checkpoint what a periodic policy says is due; passivate the idle, and the least recently used
        while states that grew keep the host over its budget."""
        for act in list(self._active.values()):
            now, persistence = time.monotonic(), act.template.persistence
            try:
                if act.unsaved and persistence.overdue(now - act.unsaved_since):
                    async with act.order.hold(read_only=False):
                        if not act.gone and act.unsaved:
                            await self._checkpoint(act)
                if not act.keep_alive and now - act.last_used > persistence.idle_timeout_s:
                    await self.passivate(act.actor_id)
            except LeaseLost:
                continue  # taken over elsewhere: already forgotten here, and the others still get their turn
        await self._make_room()

    async def _renew(self) -> None:
        """Keep the leases of the actors active here; one lost (taken over) is forgotten, unwritten."""
        store = self._started()
        for act in list(self._active.values()):
            if not await store.renew(act.actor_id, self.host_id, act.token, self.config.lease_s):
                log.warning("actor %s: lease lost to another activation; dropped here", act.actor_id)
                self._forget(act)

    async def status(self) -> dict[str, Any]:
        """For inspection: this host's incarnation and what it holds."""
        return {"host": self.host_id, "pid": os.getpid(), "rss_bytes": _rss_bytes(), "active": len(self._active),
                "actors": {a.actor_id: {"template": a.template.name, "unsaved": len(a.unsaved),
                                        "keep_alive": a.keep_alive} for a in self._active.values()}}

    async def activation(self, actor_id: str) -> dict[str, Any] | None:
        """The actor's live state here, or None when it is not active on this host."""
        act = self._active.get(actor_id)
        if act is None or act.gone:
            return None
        return {"host": self.host_id, "state": json.loads(act.template.state_json(act.instance)),
                "unsaved": len(act.unsaved), "keep_alive": act.keep_alive,
                "idle_s": round(time.monotonic() - act.last_used, 3)}


def _rss_bytes() -> int | None:
    """This process's resident memory (Linux), for the host's status."""
    try:
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None

