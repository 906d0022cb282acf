"""Running an algorithm the way its entry says, for every face of the gateway (MCP, REST).

``sync``: the result. ``async``: a task, recorded and queued at once. ``auto``:
the result if the task ends within ``SYNC_BUDGET_S``, else the task. Bad input
fails before anything waits; a call that arrives while its algorithm is still
starting waits for it within ``START_WAIT_S`` (reporting progress), or is told
at once that it is starting.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from engines.algorithms.context import CallContext
from engines.algorithms.registry import Entry, Registry
from engines.errors import AlgoError, TaskFailed
from engines.metrics import Metrics
from engines.outputs import relink
from engines.readiness import Progress, Readiness
from engines.settings import Settings
from engines.tasks.queue import TaskQueue
from storage import REDIS_UNREACHABLE, TaskRecord, TaskStatus

if TYPE_CHECKING:  # it imports Ray, which the gateway imports only once it joins a cluster
    from engines.serving.client import AlgorithmClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answered:
    """The algorithm's result (its Output as JSON data)."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """A synchronous call's result and the task record it was kept as (None: not recorded)."""

    task_id: str | None
    result: dict[str, Any]


@dataclass(frozen=True)
class Queued:
    """A task to follow: the algorithm runs (or will) in the task worker."""

    record: TaskRecord


#: a sync call's record keeps its input up to this size (a task's is its work, kept whole)
RECORDED_PAYLOAD_MAX_BYTES = 64 * 1024


def _kept(payload: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(payload, separators=(",", ":")))
    if size <= RECORDED_PAYLOAD_MAX_BYTES:
        return payload
    return {"omitted": f"an input of {size} bytes; a sync call's record keeps at most {RECORDED_PAYLOAD_MAX_BYTES}"}


def outcome(record: TaskRecord) -> dict[str, Any]:
    """An ended task's result, or its own error raised as :class:`TaskFailed`."""
    if record.status is TaskStatus.COMPLETED:
        return record.result
    raise TaskFailed(record.error or {"type": record.status.value, "message": f"task {record.status.value}"})


class Calls:
    """Every face's way to run an algorithm; each call is counted once (``engines.metrics``)."""

    def __init__(self, settings: Settings, registry: Registry, readiness: Readiness, tasks: TaskQueue,
                 metrics: Metrics) -> None:
        self.settings, self.registry, self.readiness, self.tasks = settings, registry, readiness, tasks
        self.metrics = metrics
        self._client: AlgorithmClient | None = None

    def connect(self, client: AlgorithmClient) -> None:
        """Called by the runtime once it has joined Ray (before any algorithm is ready)."""
        self._client = client

    def queued(self) -> dict[str, int]:
        """Calls of this gateway waiting for a replica slot, by algorithm (none before Ray is joined)."""
        return self._client.queued() if self._client is not None else {}

    async def run(self, name: str, arguments: Any, progress: Progress | None = None) -> Answered | Queued:
        """The answer the entry's ``mode`` asks for."""
        with self._observed(name):
            mode = self.registry.get(name).spec.mode
            if mode == "sync":
                return Answered(await self.invoke(name, arguments, progress))
            record = await self.submit(name, arguments)
            if mode == "auto":
                record = await self.tasks.wait(record.task_id, self.settings.sync_budget_s)
                if record.terminal:
                    return Answered(outcome(record))
            return Queued(record)

    async def submit(self, name: str, arguments: Any, callback_url: str | None = None,
                     result_topic: str | None = None) -> TaskRecord:
        """Record and queue a task, whatever the entry's mode."""
        with self._observed(name):
            return await self.tasks.submit(name, arguments, callback_url=callback_url, result_topic=result_topic)

    async def invoke(self, name: str, arguments: Any, progress: Progress | None = None) -> dict[str, Any]:
        """Run the algorithm now and return its result, whatever its mode."""
        with self._observed(name):
            entry, inp = self.registry.validate(name, arguments)
            await self.readiness.wait(name, self.settings.start_wait_s, progress)
            return await self._call(entry, inp)

    async def invoke_recorded(self, name: str, arguments: Any) -> Recorded:
        """:meth:`invoke`, with the call kept as a task record once it has run (``RECORD_SYNC_CALLS``),
        so ``GET /tasks/{task_id}`` and the seed's dashboards see sync calls too. One Redis write after
        the call; if Redis cannot take it, the caller still gets the result (``task_id`` None)."""
        with self._observed(name):
            return await self._invoke_recorded(name, arguments)

    async def _invoke_recorded(self, name: str, arguments: Any) -> Recorded:
        if not self.settings.record_sync_calls:
            return Recorded(None, await self.invoke(name, arguments))
        entry, inp = self.registry.validate(name, arguments)
        await self.readiness.wait(name, self.settings.start_wait_s)
        payload, started = _kept(inp.model_dump(mode="json")), time.time()
        try:
            result = await self._call(entry, inp)
        except AlgoError as err:
            await self._record(name, payload, started, error=err)
            raise
        return Recorded(await self._record(name, payload, started, result=result), result)

    def _observed(self, name: str) -> AbstractContextManager[None]:
        """Counted under its name once the name is known to be registered (a caller's made-up names must
        not become label values)."""
        self.registry.get(name)
        return self.metrics.observe(name)

    async def _call(self, entry: Entry, inp: BaseModel) -> dict[str, Any]:
        assert self._client is not None and self.tasks.config is not None, "ready implies joined"
        result = await self._client.call(entry.name, inp, entry.spec.timeout_s, CallContext(self.tasks.config.key))
        return await relink(result, self.tasks.objects)

    async def _record(self, name: str, payload: Any, started: float, **outcome: Any) -> str | None:
        try:
            return await (await self.tasks.store()).record_call(name, payload, started, **outcome)
        except (*REDIS_UNREACHABLE, AlgoError) as exc:
            log.warning("%s: the call ran but could not be recorded (%s)", name, exc)
            return None
