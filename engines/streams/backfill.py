"""A bounded range of a topic through an algorithm into a topic, once, as a task: the streaming seed's
``read_kafka`` form, with the pipelines' batching, dead letters and retries.

The range is per partition, from ``start`` (an offset, a time, or the earliest
kept) up to ``end`` (exclusive: an offset, a time, or the end as the backfill
reaches it). The task worker runs it (``kind`` ``backfill``), reporting progress
as the share of the range produced; a cancel stops it after the batches in
flight. It commits nothing to a group: a worker lost midway runs the task again
from the start, so outputs are at least once, as a pipeline's are.

Not Ray Data's ``read_kafka``: it reads "latest" from the broker's ListOffsets,
which brokers such as Tansu answer wrongly; here the end is the high watermark
as of the first fetch of each partition (the pipelines' rule), and the batches
go to the algorithm's own deployment as a pipeline's do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, Message, TopicPartition
from pydantic import Field, model_validator

from engines.streams.consumer import MemberConfig, PipelineMember, _Partition
from engines.streams.spec import PipelineSpec

Progress = Callable[[float, str], Awaitable[bool]]
PROGRESS_S = 1.0
TIMEOUT_S = 10.0


class BackfillSpec(PipelineSpec):
    """A pipeline's fields (its scaling and group unused), over a bounded range, as a task."""

    start: int | datetime | Literal["earliest"] = Field(
        "earliest", description="first offset (in every partition), first time (ISO 8601), or earliest",
        examples=["earliest", 0, "2026-11-30T00:00:00Z"])
    end: int | datetime | Literal["latest"] = Field(
        "latest", description="offset or time to stop before (exclusive), or latest: the end as the backfill reaches "
                              "each partition", examples=["latest", 10000, "2026-12-01T00:00:00Z"])
    timeout_s: float = Field(3600, gt=0, le=7 * 24 * 3600, description="the whole backfill's limit")

    @model_validator(mode="after")
    def _range(self) -> BackfillSpec:
        if isinstance(self.start, int) and self.start < 0:
            raise ValueError(f"start: must be >= 0 (got {self.start})")
        if isinstance(self.end, int) and isinstance(self.start, int) and self.end <= self.start:
            raise ValueError(f"end: must be > start ({self.start}) (got {self.end})")
        if isinstance(self.end, datetime) and isinstance(self.start, datetime) and self.end <= self.start:
            raise ValueError(f"end: must be after start ({self.start.isoformat()})")
        return self


def _ms(when: datetime) -> int:
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


@dataclass
class _Range:
    """One partition's range; the first fetch fixes what the spec left open (the earliest offset kept,
    the latest, a start past the end), and caps the end at what the partition holds."""

    start: int | None  # None: the earliest kept; OFFSET_END: past the end (nothing to read)
    end: int | None  # None: the latest
    reached: int = 0  # everything before it is produced
    fetched: bool = False

    def learn(self, first: int, high: int) -> None:
        """From the first fetch: its first offset and the partition's high watermark."""
        if self.start is None or self.start < first:  # earliest, past the end, or gone from the partition
            self.start = first
        self.end = high if self.end is None else min(self.end, high)
        self.reached, self.fetched = self.start, True

    @property
    def finished(self) -> bool:
        return self.fetched and self.reached >= self.end  # type: ignore[operator]

    @property
    def sizes(self) -> tuple[int, int]:
        """(messages in the range, of which produced); (0, 0) until fetched."""
        if not self.fetched:
            return 0, 0
        start, end = self.start or 0, self.end or 0
        return max(0, end - start), max(0, min(self.reached, end) - start)


class Backfill(PipelineMember):
    """One backfill, run in the task worker's process: assigned partitions instead of a group."""

    SPEC = BackfillSpec
    spec: BackfillSpec

    def __init__(self, config: MemberConfig) -> None:
        super().__init__(config)
        self._ranges: dict[int, _Range] = {}

    async def run(self, progress: Progress) -> dict[str, Any]:
        """Read the range, produce every result, then answer what was done (``progress`` False: stop)."""
        consumer = self._open(**{"enable.partition.eof": True})
        try:
            await asyncio.to_thread(self._plan, consumer)
        except BaseException:
            await asyncio.to_thread(consumer.close)
            raise
        consumer.assign([TopicPartition(self.spec.input_topic, p, OFFSET_BEGINNING if r.start is None else r.start)
                         for p, r in self._ranges.items()])
        await self._consume(consumer, asyncio.create_task(self._watch(progress)))
        if not self.finished:
            raise asyncio.CancelledError  # stopped (cancelled) before the end: not a result
        return {"input_topic": self.spec.input_topic, "output_topic": self.spec.output_topic,
                "messages": self._counts["consumed"], "produced": self._counts["produced"],
                "dead_letters": self._counts["dead"], "retries": self._counts["retries"],
                "partitions": {str(p): {"start": r.start, "end": r.end} for p, r in sorted(self._ranges.items())}}

    def _plan(self, consumer: Consumer) -> None:
        """Each partition's start, and its end where the spec fixes it (blocking)."""
        found = consumer.list_topics(timeout=TIMEOUT_S).topics.get(self.spec.input_topic)
        partitions = sorted(found.partitions) if found else []
        start, end = self.spec.start, self.spec.end
        starts = self._at(consumer, partitions, start) if isinstance(start, datetime) else \
            dict.fromkeys(partitions, None if start == "earliest" else start)
        if isinstance(end, datetime) and _ms(end) < time.time() * 1000:  # past the end: the end
            ends: dict[int, int | None] = {p: None if o < 0 else o for p, o in self._at(consumer, partitions,
                                                                                        end).items()}
        else:  # latest, or a time yet to come (brokers answer those wrongly too): the end as first fetched
            ends = dict.fromkeys(partitions, end if isinstance(end, int) else None)
        self._ranges = {p: _Range(starts[p], ends[p]) for p in partitions}

    def _at(self, consumer: Consumer, partitions: list[int], when: datetime) -> dict[int, int | None]:
        """The first offset at or after ``when`` in each partition (OFFSET_END: none, it is past the end)."""
        asked = [TopicPartition(self.spec.input_topic, p, _ms(when)) for p in partitions]
        found = {tp.partition: tp.offset for tp in consumer.offsets_for_times(asked, timeout=TIMEOUT_S)}
        return {p: found[p] if found.get(p, -1) >= 0 else OFFSET_END for p in partitions}

    def _learn(self, p: int, first: int) -> _Range:
        r = self._ranges[p]
        if not r.fetched:
            tp = TopicPartition(self.spec.input_topic, p)
            r.learn(first, self._consumer.get_watermark_offsets(tp, cached=True)[1])
        return r

    def _fetch_error(self, message: Message) -> None:
        if message.error().code() == KafkaError._PARTITION_EOF:  # its offset is the end
            self._learn(message.partition(), message.offset())
            self._settled()
        else:
            super()._fetch_error(message)

    def _accept(self, message: Message, loop: asyncio.AbstractEventLoop) -> None:
        r = self._learn(message.partition(), message.offset())
        if message.offset() < r.end:  # type: ignore[operator]
            super()._accept(message, loop)
        self._settled()

    def _done(self, p: int, part: _Partition, offset: int) -> None:
        self._ranges[p].reached = offset
        self._settled()

    def _settled(self) -> None:
        if self.finished:
            self._stop.set()

    @property
    def finished(self) -> bool:
        return all(r.finished for r in self._ranges.values())

    def fraction(self) -> float:
        """The share of the range produced, of the partitions whose range is known."""
        total, done = (sum(x) for x in zip(*(r.sizes for r in self._ranges.values()), strict=True)) \
            if self._ranges else (0, 0)
        return 1.0 if total == 0 else done / total

    async def _watch(self, progress: Progress) -> None:
        """Report progress every second; a False answer (the task was cancelled) stops the backfill."""
        while not self._stop.is_set():
            await asyncio.sleep(PROGRESS_S)
            message = f"{self._counts['produced']} produced, {self._counts['dead']} dead letters"
            if not await progress(min(self.fraction(), 0.99), message):
                self._stop.set()
