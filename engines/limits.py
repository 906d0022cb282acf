"""Changing an algorithm's limits while it runs (the S1 seed's "adjust concurrency dynamically").

An operator sends new ``max_concurrency``, ``num_workers``, ``max_queued`` or
batch settings. They are checked by the registry's own rules, applied through
Serve to the running deployment (Serve changes replicas, concurrency, queue
and batching in place: calls in flight finish and no model reloads, see
``engines.serving.deploy.code_version``), then recorded in Redis, where this
gateway and every later one read them before deploying: a restart keeps them.
A reset goes back to the registry file's values.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from engines.algorithms.registry import AlgorithmSpec, Entry, Registry, parse_spec
from engines.errors import RegistryError, Starting, ValidationFailed
from engines.readiness import RAY, Readiness
from engines.settings import Settings
from storage.limits import LimitStore

log = logging.getLogger(__name__)

#: the spec fields a change may touch (``batch`` through max_batch_size / batch_wait_timeout_s)
LIVE_FIELDS = ("max_concurrency", "num_workers", "max_queued", "batch")


class LimitChange(BaseModel):
    """A change of limits: the fields sent are changed, the others kept."""

    model_config = ConfigDict(extra="forbid")

    max_concurrency: int | None = Field(None, ge=1, description="calls at once, all replicas together")
    num_workers: int | None = Field(None, ge=1, le=256, description="replicas")
    max_queued: int | None = Field(None, ge=1, description="calls that may wait for a slot (per gateway)")
    max_batch_size: int | None = Field(None, ge=1, le=1024, description="inputs one forward pass takes at most")
    batch_wait_timeout_s: float | None = Field(None, ge=0, le=10, description="how long a batch waits for company")


def limits_of(spec: AlgorithmSpec) -> dict[str, Any]:
    return {name: value for name, value in spec.model_dump(mode="json").items() if name in LIVE_FIELDS}


def _with(spec: AlgorithmSpec, limits: dict[str, Any], where: str) -> AlgorithmSpec:
    """``spec`` with ``limits``, under every rule a registry entry obeys."""
    return parse_spec({**spec.model_dump(mode="json"), **limits}, where)


def _requested(spec: AlgorithmSpec, change: LimitChange) -> dict[str, Any]:
    """The limits ``change`` asks for, the batch merged with the current one."""
    sent = change.model_dump(exclude_none=True)
    if not sent:
        raise ValidationFailed([f"body: name at least one of {', '.join(LimitChange.model_fields)}"])
    limits = {k: v for k, v in sent.items() if k in LIVE_FIELDS}
    batch_fields = {k: v for k, v in sent.items() if k in ("max_batch_size", "batch_wait_timeout_s")}
    if batch_fields:
        batch = {**(spec.batch.model_dump() if spec.batch else {}), **batch_fields}
        if "max_batch_size" not in batch:
            raise ValidationFailed([f"max_batch_size: required, since {spec.name} does not batch yet"])
        limits["batch"] = batch
    return limits


class Limits:
    """The registry's limits as they are now: the file's, with the changes recorded in Redis."""

    def __init__(self, settings: Settings, registry: Registry, readiness: Readiness) -> None:
        self.settings, self.registry, self.readiness = settings, registry, readiness
        self._declared = {entry.name: entry for entry in registry}
        self._store: LimitStore | None = None
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def open(self, store: LimitStore) -> None:
        self._store = store

    async def load(self) -> None:
        """Apply the recorded changes to the registry, before anything deploys. A change the registry
        file has since made impossible is left out, with a warning, rather than stopping the start."""
        assert self._store is not None
        for name, limits in (await self._store.all()).items():
            if name not in self._declared:
                continue
            declared = self._declared[name]
            try:
                spec = _with(declared.spec, limits, f"{name}: limits changed at run time")
            except RegistryError as err:
                log.warning("%s; the registry file's limits apply", err.message)
                continue
            self.registry.replace(replace(declared, spec=spec))

    async def describe(self, name: str) -> dict[str, Any]:
        """The file's limits, the current ones, which differ, and the last changes."""
        assert self._store is not None
        current, declared = limits_of(self.registry.get(name).spec), limits_of(self._declared[name].spec)
        return {"algorithm": name, "declared": declared, "current": current,
                "changed": sorted(k for k in LIVE_FIELDS if current[k] != declared[k]),
                "log": await self._store.log(name, count=10)}

    async def change(self, name: str, change: LimitChange, by: str) -> dict[str, Any]:
        """Apply a change to the running deployment, then record it; answers :meth:`describe`."""
        self.registry.get(name)  # an unknown name is refused before it gets a lock
        async with self._locks[name]:
            entry = self.registry.get(name)
            try:
                spec = _with(entry.spec, _requested(entry.spec, change), name)
            except RegistryError as err:
                raise ValidationFailed([err.message.removeprefix(f"{name}: ")]) from None
            await self._apply(replace(entry, spec=spec), change.model_dump(exclude_none=True), by)
        return await self.describe(name)

    async def reset(self, name: str, by: str) -> dict[str, Any]:
        """Back to the registry file's limits."""
        self.registry.get(name)  # an unknown name is refused before it gets a lock
        async with self._locks[name]:
            await self._apply(self._declared[name], {"reset": True}, by)
        return await self.describe(name)

    async def _apply(self, entry: Entry, change: dict[str, Any], by: str) -> None:
        assert self._store is not None
        running = self.registry.get(entry.name).spec
        if entry.spec != running:
            if not self.readiness.is_ready(RAY):
                raise Starting("the Ray cluster", None, "limits change on running deployments")
            from engines.serving.deploy import AlgorithmApp, update

            await update(AlgorithmApp(entry, self.settings), running)
            self.registry.replace(entry)
        declared = limits_of(self._declared[entry.name].spec)
        differing = {k: v for k, v in limits_of(entry.spec).items() if v != declared[k]}
        await self._store.save(entry.name, differing, change, by)
        log.info("%s: limits changed by %s: %s", entry.name, by, change)
