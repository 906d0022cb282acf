"""Long jobs in Redis: records, the work queue, cancellation, waiting.

Shaped like arq: a ``TaskStatus`` enum, a ``TaskRecord`` dataclass and one
``TaskStore`` that is the only code issuing Redis commands for tasks. The key
layout lives in ``storage.keys``.

Delivery is at least once. Each submission is a message in the ``{prefix}:tasks``
stream, read by the consumer group ``workers``. A message stays pending until
the task ends; if its worker dies (stops renewing its claim for
``visibility_timeout_s``) another worker takes it over with XAUTOCLAIM. Every
delivery counts as an attempt, and so does a run its worker starts again in place
because the algorithm's replica died (:meth:`TaskStore.retry`); past
``max_attempts`` the task fails instead of running again.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from storage import _scripts
from storage._codec import as_mapping, dumps, error_dict, loads, messages, to_float
from storage.command_batch import CommandBatch
from storage.keys import DEFAULT_PREFIX, KeyLayout

TASK_TTL_S = 7 * 24 * 3600
VISIBILITY_TIMEOUT_S = 60.0
LIST_SCAN_LIMIT = 10_000


class TaskStatus(StrEnum):
    """The seed Ray Service's words, and the MCP tasks specification's."""

    QUEUED = "queued"  # submitted; waiting in the stream for a worker
    RUNNING = "running"  # a worker has claimed it and started it
    COMPLETED = "completed"  # ended with a result
    FAILED = "failed"  # ended with an error (including workers dying too often)
    CANCELLED = "cancelled"  # ended at a caller's request; a late result is dropped

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def _missing_(cls, value: object) -> TaskStatus | None:
        return cls.COMPLETED if value == "succeeded" else None  # records of versions before "completed"


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
_PRIVATE_FIELDS = frozenset({"message_id"})


@dataclass(frozen=True)
class TaskRecord:
    """One task as stored in ``{prefix}:task:{id}``, JSON fields decoded."""

    task_id: str
    algorithm: str
    status: TaskStatus
    payload: Any = None
    progress: float = 0.0  # fraction done, 0..1
    progress_message: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None  # {"type": ..., "message": ...}
    attempts: int = 0  # runs started so far: deliveries to a worker, and replays after a replica died
    max_attempts: int = 1
    timeout_s: float | None = None
    callback_url: str | None = None
    result_topic: str | None = None  # the final record is also published there (a Kafka topic)
    kind: str = "call"  # call: the algorithm on the payload; backfill: a topic range through it
    worker_id: str | None = None
    created_at: float = 0.0  # unix seconds, the server's clock
    started_at: float | None = None
    finished_at: float | None = None
    message_id: str | None = field(default=None, repr=False)  # its entry in the stream

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    def public(self) -> dict[str, Any]:
        """What a caller may see: everything but queue internals."""
        data = {k: v for k, v in asdict(self).items() if k not in _PRIVATE_FIELDS}
        data["status"] = self.status.value
        return data

    @classmethod
    def from_hash(cls, task_id: str, h: Mapping[str, str]) -> TaskRecord:
        return cls(
            task_id=task_id,
            algorithm=h.get("algorithm", ""),
            status=TaskStatus(h.get("status", TaskStatus.QUEUED)),
            payload=loads(h.get("payload")),
            progress=float(h.get("progress") or 0),
            progress_message=h.get("progress_message"),
            result=loads(h.get("result")),
            error=loads(h.get("error")),
            attempts=int(h.get("attempts") or 0),
            max_attempts=int(h.get("max_attempts") or 1),
            timeout_s=to_float(h.get("timeout_s")),
            callback_url=h.get("callback_url"),
            result_topic=h.get("result_topic"),
            kind=h.get("kind") or "call",
            worker_id=h.get("worker_id"),
            created_at=float(h.get("created_at") or 0),
            started_at=to_float(h.get("started_at")),
            finished_at=to_float(h.get("finished_at")),
            message_id=h.get("message_id"),
        )


@dataclass
class TaskStats:
    """Counters of ended tasks (``{prefix}:task-stats``): by status, and latency buckets by algorithm
    (each task in the first bucket it fits: upper bound in seconds → count)."""

    ended: dict[str, int] = field(default_factory=dict)
    latency: dict[str, dict[float, int]] = field(default_factory=dict)
    latency_sum: dict[str, float] = field(default_factory=dict)


class TaskStore:
    """Every Redis operation on tasks (heartbeats are ``storage.heartbeats``).

    ``redis`` must decode responses (``storage.connections.redis_pool`` does);
    the store does not own it and never closes it.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        task_ttl_s: int = TASK_TTL_S,
        visibility_timeout_s: float = VISIBILITY_TIMEOUT_S,
    ) -> None:
        if not redis.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("TaskStore needs a Redis client with decode_responses=True; use storage.redis_pool(url)")
        if task_ttl_s < 1 or visibility_timeout_s <= 0:
            raise ValueError("task_ttl_s must be >= 1 and visibility_timeout_s > 0")
        self.redis = redis
        self.keys = KeyLayout(prefix)
        self.task_ttl_s = int(task_ttl_s)
        self.visibility_timeout_s = visibility_timeout_s
        self._group_ready = False
        self._autoclaim_cursor = "0-0"
        self._next_reclaim = 0.0
        s = redis.register_script
        self._submit, self._claim = s(_scripts.SUBMIT), s(_scripts.CLAIM)
        self._progress, self._finish, self._cancel = s(_scripts.PROGRESS), s(_scripts.FINISH), s(_scripts.CANCEL)
        self._renew, self._retry, self._record = s(_scripts.RENEW_LEASES), s(_scripts.RETRY), s(_scripts.RECORD)
        self._batch = CommandBatch(redis)

    # -- callers ---------------------------------------------------------

    async def submit(
        self,
        algorithm: str,
        payload: Any,
        *,
        callback_url: str | None = None,
        result_topic: str | None = None,
        timeout_s: float | None = None,
        max_attempts: int = 3,
        kind: str = "call",
    ) -> TaskRecord:
        """Record the task and enqueue it in one atomic step: never one without the other."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError("timeout_s must be positive")
        await self._ensure_group()
        task_id = uuid4().hex
        payload_json = dumps(payload)
        fields = {"max_attempts": str(max_attempts)}
        if timeout_s is not None:
            fields["timeout_s"] = repr(float(timeout_s))
        if callback_url:
            fields["callback_url"] = callback_url
        if result_topic:
            fields["result_topic"] = result_topic
        if kind != "call":
            fields["kind"] = kind
        pairs = [x for kv in fields.items() for x in kv]
        message_id, created_at = await self._batch.script(
            self._submit, [self.keys.task(task_id), self.keys.stream],
            [task_id, algorithm, payload_json, str(self.task_ttl_s), *pairs])
        return TaskRecord(
            task_id=task_id,
            algorithm=algorithm,
            status=TaskStatus.QUEUED,
            payload=json.loads(payload_json),  # as get() will return it
            max_attempts=max_attempts,
            timeout_s=None if timeout_s is None else float(timeout_s),
            callback_url=callback_url or None,
            result_topic=result_topic or None,
            kind=kind,
            created_at=float(created_at),
            message_id=message_id,
        )

    async def record_call(self, algorithm: str, payload: Any, started_at: float, *, result: Any = None,
                          error: Mapping[str, Any] | BaseException | None = None) -> str:
        """Record a synchronous call that has ended, as a task readable with :meth:`get` until it
        expires (the seed Ray Service recorded every call); its id. ``started_at``: the caller's clock."""
        task_id = uuid4().hex
        if error is None:
            status, field, value = TaskStatus.COMPLETED, "result", dumps(result)
        else:
            status, field, value = TaskStatus.FAILED, "error", dumps(error_dict(error))
        await self._batch.script(self._record, [self.keys.task(task_id)],
                                 [task_id, algorithm, dumps(payload), status.value, field, value,
                                  f"{started_at:.6f}", str(self.task_ttl_s)])
        return task_id

    async def get(self, task_id: str) -> TaskRecord | None:
        h = await self._batch.command("HGETALL", self.keys.task(task_id))
        return TaskRecord.from_hash(task_id, h) if h else None

    async def cancel(self, task_id: str) -> TaskRecord | None:
        """End a queued or running task as cancelled and tell its worker; an ended task is left as is."""
        error = {"type": "cancelled", "message": "cancelled at the caller's request"}
        await self._on_task(self._cancel, task_id, dumps(error), self.keys.cancel_channel, task_id)
        return await self.get(task_id)

    async def wait(self, task_id: str, timeout_s: float) -> TaskRecord | None:
        """The record once it has ended, or as it stands when ``timeout_s`` runs out.

        Blocks on the task's done list (BLMOVE onto itself, so every waiter
        wakes and the element stays for later ones) rather than polling.
        """
        deadline = time.monotonic() + max(timeout_s, 0)
        done = self.keys.done(task_id)
        while True:
            record = await self.get(task_id)
            remaining = deadline - time.monotonic()
            if record is None or record.terminal or remaining <= 0:
                return record
            await self.redis.blmove(done, done, max(remaining, 0.01), "LEFT", "RIGHT")

    async def watch(
        self, task_id: str, timeout_s: float | None = None, poll_s: float = 1.0
    ) -> AsyncIterator[TaskRecord]:
        """Yield the record now and after each change (status, progress) until it ends or time runs out.

        Changes arrive on ``{prefix}:events:{id}``; ``poll_s`` re-reads anyway,
        in case a message was lost with a dropped connection.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.events(task_id))
        try:
            last: tuple[object, ...] | None = None
            while True:
                record = await self.get(task_id)
                if record is None:
                    return
                state = (record.status, record.progress, record.progress_message, record.attempts)
                if state != last:
                    last = state
                    yield record
                if record.terminal:
                    return
                wait = poll_s if deadline is None else min(poll_s, deadline - time.monotonic())
                if wait <= 0:
                    return
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
        finally:
            await pubsub.aclose()

    # -- workers ---------------------------------------------------------

    async def claim(self, worker_id: str, count: int = 1, block_ms: int = 5000,
                    held: Collection[str] = ()) -> list[TaskRecord]:
        """Up to ``count`` tasks for this worker, each marked running: stale claims taken over first.

        Waits up to ``block_ms`` for new messages (0: not at all); the claims go
        in one pipeline. Each record's ``attempts`` counts this delivery. A task
        cancelled while queued is skipped here, never started.

        ``held`` are the message ids of the tasks this worker is still running.
        Their claims go stale when its renewals fail (Redis unreachable for longer
        than the visibility timeout); taking such a claim over renews it, and the
        task is not started a second time (nor failed as "worker lost").
        """
        await self._ensure_group()
        deadline = time.monotonic() + block_ms / 1000
        while True:
            try:
                deliveries = await self._reclaim_stale(worker_id, count) or await self._read_new(
                    worker_id, count, int((deadline - time.monotonic()) * 1000)
                )
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                self._group_ready = False  # the stream was deleted under us: start again
                await self._ensure_group()
                continue
            foreign = [message_id for message_id, task_id in deliveries if task_id is None]
            if foreign:  # not ours: drop them
                await self.redis.xack(self.keys.stream, self.keys.group, *foreign)
            ours = [(message_id, task_id) for message_id, task_id in deliveries
                    if task_id is not None and message_id not in held]
            found = await asyncio.gather(*(self._on_task(self._claim, task_id, message_id, worker_id)
                                           for message_id, task_id in ours))
            records = [TaskRecord.from_hash(task_id, as_mapping(fields))
                       for (_, task_id), fields in zip(ours, found, strict=True) if fields]
            if records or not deliveries or time.monotonic() >= deadline:
                return records

    async def set_progress(self, task_id: str, fraction: float, message: str | None = None) -> bool:
        """Record progress (clamped to 0..1); False means the task has ended (e.g. was cancelled): stop."""
        if not math.isfinite(fraction):
            raise ValueError("progress must be a finite number")
        fraction = min(max(float(fraction), 0.0), 1.0)
        return await self._on_task(self._progress, task_id, repr(fraction), message or "") == 1

    async def retry(self, task_id: str) -> int:
        """Count one more attempt of a running task that its worker runs again in place (its
        replica died under it). Returns the attempts so far; 0 if it is no longer running."""
        return max(0, int(await self._on_task(self._retry, task_id)))

    async def finish(
        self,
        task_id: str,
        status: TaskStatus | str,
        result: Any = None,
        error: Mapping[str, Any] | BaseException | None = None,
    ) -> bool:
        """End the task; False if it had already ended (its first end stands) or does not exist."""
        status = TaskStatus(status)
        if not status.terminal:
            raise ValueError(f"finish needs a terminal status, not {status.value!r}")
        result_json = "" if result is None else dumps(result)
        error_json = "" if error is None else dumps(error_dict(error))
        return await self._on_task(self._finish, task_id, status.value, result_json, error_json) == 1

    async def ended(self, task_ids: Iterable[str]) -> list[str]:
        """Those of ``task_ids`` no longer queued or running (ended, or expired and gone).

        A worker asks this now and then about the tasks it runs: cancellations
        reach it by pub/sub, which does not replay what it missed while disconnected.
        """
        ids = list(task_ids)
        statuses = await asyncio.gather(*(self._batch.command("HGET", self.keys.task(t), "status") for t in ids))
        return [t for t, status in zip(ids, statuses, strict=True) if status is None or TaskStatus(status).terminal]

    async def cancellations(self) -> AsyncIterator[str]:
        """Task ids as they are cancelled, for workers to stop running ones (pub/sub: missed while disconnected)."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.cancel_channel)
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message and message.get("type") == "message":
                    yield message["data"]
        finally:
            await pubsub.aclose()

    async def renew_leases(self, worker_id: str, message_ids: Iterable[str]) -> int:
        """Keep the claims of the tasks this worker still runs (their ``message_id``) from going
        stale; call it well within ``visibility_timeout_s``. Returns how many were renewed."""
        ids = list(message_ids)
        if not ids:
            return 0
        return int(await self._renew(keys=[self.keys.stream], args=[self.keys.group, worker_id, *ids]))

    # -- listing ---------------------------------------------------------

    async def recent(
        self, status: TaskStatus | str | None = None, algorithm: str | None = None, limit: int = 50
    ) -> list[TaskRecord]:
        """Newest tasks first, read from the submission stream (no second index to keep in step).

        Entries whose record has expired are skipped; at most ``LIST_SCAN_LIMIT``
        entries are scanned, so a rare status deep in history may be missed.
        """
        wanted = TaskStatus(status) if status is not None else None
        found: list[TaskRecord] = []
        before, scanned, page = "+", 0, max(limit * 2, 100)
        while len(found) < limit and scanned < LIST_SCAN_LIMIT:
            entries = await self.redis.xrevrange(self.keys.stream, max=before, count=page)
            if not entries:
                break
            scanned += len(entries)
            before = f"({entries[-1][0]}"  # exclusive: the next page starts below this one
            ids = [f["task_id"] for _, f in entries if "task_id" in f and algorithm in (None, f.get("algorithm"))]
            async with self.redis.pipeline(transaction=False) as pipe:
                for task_id in ids:
                    pipe.hgetall(self.keys.task(task_id))
                hashes = await pipe.execute()
            for task_id, h in zip(ids, hashes, strict=True):
                if h and (wanted is None or h.get("status") == wanted):
                    found.append(TaskRecord.from_hash(task_id, h))
        return found[:limit]

    async def queue_counts(self) -> tuple[int, int]:
        """``(waiting, claimed)``: submissions no worker has taken yet, and those taken but not ended
        (running, or held by a worker that died until they are redelivered). One XINFO, for metrics."""
        try:
            groups = await self.redis.xinfo_groups(self.keys.stream)
        except ResponseError:  # no stream yet: nothing was ever submitted
            return 0, 0
        group = next((g for g in groups if g.get("name") == self.keys.group), None)
        if group is None:
            return int(await self.redis.xlen(self.keys.stream)), 0
        lag = group.get("lag")
        if lag is None:  # the server cannot tell (entries deleted mid-stream): an estimate, payloads unread
            lag = max(0, int(await self.redis.xlen(self.keys.stream)) - int(group.get("entries-read") or 0))
        return int(lag), int(group.get("pending") or 0)

    async def ended_stats(self) -> TaskStats:
        """Tasks ended so far by status, and their latency by algorithm (one HGETALL, for metrics)."""
        stats = TaskStats()
        for name, value in (await self.redis.hgetall(self.keys.task_stats)).items():
            kind, _, rest = name.partition(":")
            if kind == "ended":
                stats.ended[rest] = int(value)
            elif kind == "latency-sum":
                stats.latency_sum[rest] = float(value)
            elif kind == "latency":
                algorithm, _, bucket = rest.rpartition(":")
                stats.latency.setdefault(algorithm, {})[math.inf if bucket == "inf" else float(bucket)] = int(value)
        return stats

    # -- internals -------------------------------------------------------

    def _task_keys(self, task_id: str) -> list[str]:
        return [self.keys.task(task_id), self.keys.stream, self.keys.done(task_id), self.keys.task_stats]

    def _task_args(self, task_id: str) -> list[str]:
        return [self.keys.group, str(self.task_ttl_s), self.keys.events(task_id)]

    async def _on_task(self, script: AsyncScript, task_id: str, *args: str) -> Any:
        """Run a one-task script (``storage._scripts`` calling convention), batched with concurrent ones."""
        return await self._batch.script(script, self._task_keys(task_id), [*self._task_args(task_id), *args])

    async def _ensure_group(self) -> None:
        """Create the consumer group from the stream's start, so nothing submitted before it is skipped."""
        if self._group_ready:
            return
        try:
            await self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    async def _reclaim_stale(self, worker_id: str, count: int) -> list[tuple[str, str | None]]:
        """Take over stale claims; after finding none, look again only a while later (a claim
        goes stale in ``visibility_timeout_s``, so checking before every claim is waste)."""
        now = time.monotonic()
        if now < self._next_reclaim:
            return []
        min_idle_ms = max(1, int(self.visibility_timeout_s * 1000))
        reply = await self.redis.xautoclaim(
            self.keys.stream, self.keys.group, worker_id, min_idle_ms, start_id=self._autoclaim_cursor, count=count
        )
        self._autoclaim_cursor = reply[0]
        found = messages(reply[1])
        if not found:
            self._next_reclaim = now + min(1.0, self.visibility_timeout_s / 4)
        return found

    async def _read_new(self, worker_id: str, count: int, wait_ms: int) -> list[tuple[str, str | None]]:
        reply = await self.redis.xreadgroup(
            self.keys.group, worker_id, {self.keys.stream: ">"}, count=count, block=wait_ms if wait_ms > 0 else None
        )
        if isinstance(reply, dict):  # RESP3 shape
            reply = list(reply.items())
        return [m for _stream, entries in reply or [] for m in messages(entries)]
