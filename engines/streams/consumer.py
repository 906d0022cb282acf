"""One member of a pipeline's consumer group, as a Ray actor: fetch, call the algorithm in batches,
produce, and only then commit.

Per assigned partition, batches run one after another (outputs keep the input's
order); partitions run side by side. A batch is one request to the algorithm's
own deployment (``AlgorithmReplica.many``), where every message joins the
replica's batcher as a call of its own, so the entry's batching, concurrency and
replicas apply. A message that is not JSON, does not fit the input map or that
the algorithm rejects (a 4xx) goes to the dead-letter topic with its error, once;
any other failure is retried, for the failed messages only, with backoff and
without end (nothing is skipped). Past ``max_in_flight`` fetched-but-uncommitted
messages the member pauses its partitions and keeps polling, so a slow algorithm
never gets it evicted from the group.

Kafka's client is librdkafka (confluent-kafka); its blocking calls run in
threads, its delivery reports are pumped by one thread into this event loop.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from engines.algorithms.context import CallContext
from engines.retries import retry_context
from engines.streams.mapping import Coordinates, Mapping, Unfit
from engines.streams.spec import PipelineSpec
from storage import redis_pool
from storage.pipelines import KEEP_LAST, PipelineStore

log = logging.getLogger(__name__)

REPORT_S = 1.0
LATENCY_SAMPLES = 4096
#: a failing algorithm (or broker) is retried without end, at most this far apart
RETRY_MAX_S = 10.0
FETCH_WAIT_MS = 10


@dataclass(frozen=True)
class MemberConfig:
    """What a member needs, as plain values (it is pickled into the actor)."""

    spec: dict[str, Any]
    member: str
    redis_url: str
    prefix: str
    store_key: str | None
    timeout_s: float
    session_timeout_ms: int = 10_000


@dataclass(frozen=True)
class _Computed:
    """A batch's messages that became inputs (message, its JSON, the input), their answers, and the
    messages that could not become inputs, with why."""

    fitted: list[tuple[Message, Any, Any]]
    answers: list[dict[str, Any]]
    dead: list[tuple[Message, dict[str, Any]]]


class _Retry(Exception):
    """Some messages of the batch failed in a way that may pass: send those again."""


@dataclass
class _Partition:
    queue: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    committed: int = -1  # the next offset to read, as committed by this member
    worker: asyncio.Task | None = None


class PipelineMember:
    """A consumer-group member of one pipeline; the supervisor starts it with :meth:`ensure`."""

    #: what its config's spec is (a backfill's has a range too)
    SPEC: type[PipelineSpec] = PipelineSpec

    def __init__(self, config: MemberConfig) -> None:
        self.config = config
        self.spec = self.SPEC.model_validate(config.spec)
        self.mapping = Mapping(self.spec)
        self._task: asyncio.Task | None = None
        self._parts: dict[int, _Partition] = {}
        self._revoked: set[int] = set()
        self._in_flight = 0
        self._paused = False
        self._counts = collections.Counter[str]()
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)
        self._last_error: str | None = None
        self._keep_dead: list[dict[str, Any]] = []
        self._keep_out: list[dict[str, Any]] = []
        self._stop = threading.Event()

    async def ensure(self) -> dict[str, Any]:
        """Start the member if it is not running (after a restart, too); its latest stats."""
        if self._task is None or self._task.done():
            if self._task is not None and self._task.exception():
                self._last_error = f"{type(self._task.exception()).__name__}: {self._task.exception()}"
            self._task = asyncio.create_task(self._run(), name=f"pipeline {self.config.member}")
        return self._stats()

    async def close(self) -> None:
        """Leave the group cleanly (the supervisor calls it before removing the member)."""
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(asyncio.gather(self._task, return_exceptions=True), 30)

    # -- the loop ------------------------------------------------------------------

    async def _run(self) -> None:
        consumer = self._open()
        consumer.subscribe([self.spec.input_topic], on_assign=self._assigned, on_revoke=self._revoked_cb,
                           on_lost=self._revoked_cb)
        await self._consume(consumer, asyncio.create_task(self._report_loop()))

    def _open(self, **consumer_config: Any) -> Consumer:
        """The algorithm's handle, the producer, and a consumer (not subscribed yet)."""
        from ray import serve

        assert self.spec.broker is not None, "the gateway fills the broker in"
        client = self.spec.broker.client_config()
        self._handle = serve.get_deployment_handle(self.spec.algorithm, app_name=self.spec.algorithm)
        self._store = PipelineStore(redis_pool(self.config.redis_url), prefix=self.config.prefix)
        self._producer = Producer({**client, "client.id": self.config.member, "linger.ms": 2, "acks": "all",
                                   # idempotence off (Tansu loses data with it); one request in flight keeps order
                                   "enable.idempotence": False, "max.in.flight.requests.per.connection": 1})
        self._consumer = Consumer({**client, "group.id": self.spec.consumer_group, "client.id": self.config.member,
                                   "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                   "session.timeout.ms": self.config.session_timeout_ms,
                                   # a fetch with nothing new returns after this, not librdkafka's 500 ms: the
                                   # live latency (brokers may hold a fetch the whole wait, new data or not)
                                   "fetch.wait.max.ms": FETCH_WAIT_MS,
                                   "heartbeat.interval.ms": max(100, self.config.session_timeout_ms // 5),
                                   **consumer_config})
        return self._consumer

    async def _consume(self, consumer: Consumer, reporter: asyncio.Task) -> None:
        """Fetch and hand out messages until stopped; then stop the partitions' work and close."""
        loop = asyncio.get_running_loop()
        pump = asyncio.create_task(asyncio.to_thread(self._pump_deliveries))
        wait_s = self.spec.batch_wait_ms / 1000
        try:
            while not self._stop.is_set():
                messages = await asyncio.to_thread(consumer.consume, self.spec.batch_size, max(wait_s, 0.005))
                for message in messages:
                    if message.error():
                        self._fetch_error(message)
                        continue
                    self._accept(message, loop)
                self._backpressure(consumer)
        finally:
            self._stop.set()
            for part in self._parts.values():
                if part.worker:
                    part.worker.cancel()
            reporter.cancel()
            await asyncio.gather(pump, reporter, *(p.worker for p in self._parts.values() if p.worker),
                                 return_exceptions=True)
            await asyncio.to_thread(consumer.close)
            await asyncio.to_thread(self._producer.flush, 5)

    def _fetch_error(self, message: Message) -> None:
        if message.error().code() != KafkaError._PARTITION_EOF:
            self._last_error = f"consume: {message.error()}"

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Runs in the polling thread. librdkafka keeps a partition's pause across a rebalance: one paused
        here, given to another member and given back after this one resumed would never be fetched
        again, so each assigned partition is set to this member's state. A partition that comes back may
        have moved on under another member meanwhile: what this one committed for it then is forgotten."""
        consumer.assign(partitions)
        (consumer.pause if self._paused else consumer.resume)(partitions)
        for tp in partitions:
            self._revoked.discard(tp.partition)
            if tp.partition in self._parts:
                self._parts[tp.partition].committed = -1
        self._counts["rebalances"] += 1

    def _revoked_cb(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Runs in the polling thread: messages of these partitions not committed yet are redone by
        their next owner (at least once); ours stop being committed."""
        self._revoked |= {tp.partition for tp in partitions}

    def _accept(self, message: Message, loop: asyncio.AbstractEventLoop) -> None:
        p = message.partition()
        part = self._parts.get(p)
        if part is None:
            part = self._parts[p] = _Partition()
        if part.worker is None or part.worker.done():
            part.worker = loop.create_task(self._work(p, part))
        part.queue.put_nowait(message)
        self._in_flight += 1
        self._counts["consumed"] += 1

    def _backpressure(self, consumer: Consumer) -> None:
        """Pause every assigned partition past ``max_in_flight``; resume below half of it."""
        limit = self.spec.max_in_flight
        if not self._paused and self._in_flight >= limit:
            consumer.pause(consumer.assignment())
            self._paused = True
            self._counts["pauses"] += 1
        elif self._paused and self._in_flight < max(1, limit // 2):
            consumer.resume(consumer.assignment())
            self._paused = False

    async def _work(self, p: int, part: _Partition) -> None:
        """Batches of one partition, in order; the next batch's algorithm call overlaps this one's
        produce and commit (outputs still go out batch after batch)."""
        emitting: asyncio.Task | None = None
        try:
            while True:
                batch = [await part.queue.get()]
                while len(batch) < self.spec.batch_size and not part.queue.empty():
                    batch.append(part.queue.get_nowait())
                if p in self._revoked:  # its next owner reads these from the last commit: not done twice
                    self._in_flight -= len(batch)
                    continue
                computed = await self._compute(batch)
                if emitting is not None:
                    await emitting
                emitting = asyncio.create_task(self._emit_until_done(p, part, batch, computed))
        finally:
            if emitting is not None:
                emitting.cancel()

    async def _emit_until_done(self, p: int, part: _Partition, batch: list[Message], computed: _Computed) -> None:
        try:
            async for attempt in retry_context(Exception, max_s=RETRY_MAX_S):
                with attempt, self._noting():
                    await self._emit(p, part, batch, computed)
        finally:
            self._in_flight -= len(batch)

    @contextlib.contextmanager
    def _noting(self) -> Iterator[None]:
        """A batch that failed past the algorithm (the broker refused a produce, say) is done again."""
        try:
            yield
        except Exception as exc:
            log.warning("%s: a batch failed, doing it again: %s: %s", self.config.member, type(exc).__name__, exc)
            self._note_retry(f"{type(exc).__name__}: {exc}")
            raise

    # -- one batch -----------------------------------------------------------------

    async def _compute(self, batch: list[Message]) -> _Computed:
        """Each message's answer: its result, or why it is a dead letter (failures that may pass are
        retried inside, so this always ends with an answer for every message)."""
        fitted: list[tuple[Message, Any, Any]] = []
        dead: list[tuple[Message, dict[str, Any]]] = []
        for m in batch:
            try:
                message = self.mapping.message(m.value())
                fitted.append((m, message, self.mapping.input(message)))
            except Unfit as exc:
                dead.append((m, {"type": "unfit", "message": str(exc)}))
        answers = await self._call([inp for _, _, inp in fitted]) if fitted else []
        return _Computed(fitted, answers, dead)

    async def _emit(self, p: int, part: _Partition, batch: list[Message], computed: _Computed) -> None:
        """Produce the results and dead letters, wait for the broker, then commit past the batch."""
        fitted, answers, dead = computed.fitted, computed.answers, list(computed.dead)
        delivery = _Delivery(asyncio.get_running_loop())
        produced: list[tuple[Coordinates, bytes]] = []
        for (m, message, _), answer in zip(fitted, answers, strict=True):
            if "result" in answer:
                at = _coordinates(m)
                value = self.mapping.output(message, answer["result"], at)
                self._produce(delivery, self.spec.output_topic, m.key(), value)
                produced.append((at, value))
            else:
                dead.append((m, answer["error"]))
        letters = [_dead_letter(m, error) for m, error in dead]
        if self.spec.dead_letter_topic:
            for (m, _), letter in zip(dead, letters, strict=True):
                self._produce(delivery, self.spec.dead_letter_topic, m.key(), orjson.dumps(letter))
        await delivery.all_sent()
        now_ms = time.time() * 1000
        self._latency_ms.extend(now_ms - m.timestamp()[1] for m in batch if m.timestamp()[1] > 0)
        self._counts["produced"] += len(produced)
        self._counts["batches"] += 1
        self._counts["dead"] += len(dead)
        self._keep_dead = [*self._keep_dead, *letters][-KEEP_LAST:]
        self._keep_out = [*self._keep_out, *({"key": at.key, "partition": at.partition, "offset": at.offset,
                                              "value": value.decode()} for at, value in produced[-KEEP_LAST:])
                          ][-KEEP_LAST:]
        if p in self._revoked:
            return  # no longer ours: the next owner redoes from the last commit
        self._done(p, part, batch[-1].offset() + 1)

    def _done(self, p: int, part: _Partition, offset: int) -> None:
        """Everything before ``offset`` in partition ``p`` is produced: commit past it."""
        try:  # not waited for: a commit lost (to a crash or a rebalance) only means these are redone
            self._consumer.commit(offsets=[TopicPartition(self.spec.input_topic, p, offset)], asynchronous=True)
            part.committed = offset
        except Exception as exc:
            self._last_error = f"commit: {exc}"

    async def _call(self, inputs: list[Any]) -> list[dict[str, Any]]:
        """Each input's answer; failures that may pass are sent again, alone, with backoff, until they do."""
        answers: list[dict[str, Any] | None] = [None] * len(inputs)
        pending = list(range(len(inputs)))
        context = CallContext(self.config.store_key) if self.config.store_key else None
        async for attempt in retry_context(_Retry, max_s=RETRY_MAX_S):
            with attempt:
                try:
                    got = await asyncio.wait_for(
                        self._handle.many.remote([inputs[i] for i in pending], context), self.config.timeout_s)
                except Exception as exc:  # the deployment is starting, busy, or its replica died
                    self._note_retry(f"{type(exc).__name__}: {exc}")
                    raise _Retry from None
                failed = ""
                for i, answer in zip(pending, got, strict=True):
                    if "result" in answer or answer.get("rejected"):
                        answers[i] = answer
                    else:
                        failed = answer["error"].get("message", "")
                pending = [i for i in pending if answers[i] is None]
                if pending:
                    self._note_retry(f"{len(pending)} message(s) failed: {failed}")
                    raise _Retry
        return answers  # type: ignore[return-value]

    def _note_retry(self, error: str) -> None:
        self._counts["retries"] += 1
        self._last_error = error[:500]

    def _produce(self, delivery: _Delivery, topic: str, key: bytes | None, value: bytes) -> None:
        delivery.expect()
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivery.report)
                return
            except BufferError:  # the local queue is full: the pump thread drains it
                self._producer.poll(0.05)

    def _pump_deliveries(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    # -- stats ---------------------------------------------------------------------

    async def _report_loop(self) -> None:
        before, last = collections.Counter(self._counts), time.monotonic()
        while True:
            await asyncio.sleep(REPORT_S)
            now = time.monotonic()
            stats = self._stats()
            stats["rate_in"] = round((self._counts["consumed"] - before["consumed"]) / (now - last), 1)
            stats["rate_out"] = round((self._counts["produced"] - before["produced"]) / (now - last), 1)
            before, last = collections.Counter(self._counts), now
            dead, self._keep_dead = self._keep_dead, []
            out, self._keep_out = self._keep_out, []
            try:
                await self._store.report(self.spec.name, self.config.member, stats, ttl_s=REPORT_S * 5)
                await self._store.keep_last(self.spec.name, dead=dead, outputs=out)
            except Exception as exc:  # Redis away: the pipeline goes on; the stats come back with it
                log.warning("%s: could not report (%s)", self.config.member, exc)

    def _stats(self) -> dict[str, Any]:
        partitions = {}
        consumer = getattr(self, "_consumer", None)
        assigned = [tp.partition for tp in consumer.assignment()] if consumer is not None else []
        assert consumer is not None or not assigned
        for p in sorted(set(assigned) - self._revoked):
            part = self._parts.get(p)
            committed = part.committed if part else -1
            tp = TopicPartition(self.spec.input_topic, p)
            try:  # the high watermark as of the last fetch (brokers' "latest" answers may be wrong)
                high = consumer.get_watermark_offsets(tp, cached=True)[1]
                read = committed if committed >= 0 else consumer.position([tp])[0].offset
            except Exception:  # nothing fetched from it yet
                high = read = -1
            partitions[str(p)] = {"committed": committed, "high": high,
                                  "lag": max(0, high - read) if high >= 0 and read >= 0 else None}
        latencies = sorted(self._latency_ms)
        counted = ("consumed", "produced", "dead", "retries", "pauses", "rebalances", "batches")
        return {"member": self.config.member, "pid": os.getpid(), "partitions": partitions,
                "in_flight": self._in_flight, "paused": self._paused, **{k: self._counts[k] for k in counted},
                "p50_ms": _quantile(latencies, 0.5), "p99_ms": _quantile(latencies, 0.99),
                "last_error": self._last_error, "at": time.time()}


class _Delivery:
    """One batch's produced messages: the broker's reports arrive on the pump thread; the batch waits for
    all of them with a single wake-up, not one per message."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._done = loop, loop.create_future()
        self._pending, self._error = 0, None
        self._lock = threading.Lock()

    def expect(self) -> None:
        with self._lock:
            self._pending += 1

    def report(self, err: KafkaError | None, message: Message) -> None:
        with self._lock:
            self._pending -= 1
            if err is not None and self._error is None:
                self._error = RuntimeError(f"produce to {message.topic()}: {err}")
            if self._pending == 0:
                self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if self._done.done():
            return
        if self._error is None:
            self._done.set_result(None)
        else:
            self._done.set_exception(self._error)

    async def all_sent(self) -> None:
        """Every message acknowledged by the broker; a refused one fails the batch (it is done again)."""
        with self._lock:
            if self._pending == 0:
                self._settle()
        await self._done


def _quantile(ordered: list[float], q: float) -> float | None:
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


def _coordinates(m: Message) -> Coordinates:
    key = m.key()
    return Coordinates(m.topic(), m.partition(), m.offset(), key.decode(errors="replace") if key else None,
                       m.timestamp()[1])


def _dead_letter(m: Message, error: dict[str, Any]) -> dict[str, Any]:
    """The error, where the message came from, and the message itself (text, or base64 if not UTF-8)."""
    raw = m.value() or b""
    try:
        value, encoding = raw.decode(), "utf-8"
    except UnicodeDecodeError:
        value, encoding = base64.b64encode(raw).decode(), "base64"
    at = _coordinates(m)
    return {"error": error, "topic": at.topic, "partition": at.partition, "offset": at.offset, "key": at.key,
            "value": value, "encoding": encoding, "at": time.time()}

