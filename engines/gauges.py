"""What the runtime holds, read when it is asked (a scrape, the debug log), not kept up to date.

Redis, the actor hosts and the pipelines' consumer reports are the truth any gateway
can read, so these numbers are read from them at scrape time: one XINFO for the task
queue, one ZCARD and a status call per actor host, the pipelines' stats keys. Each part
is read within :data:`PART_TIMEOUT_S`; a part that cannot be read (still starting,
Redis away) is left out of that scrape rather than failing it. ``collect`` (Prometheus'
side, synchronous) serves what the last :meth:`RuntimeGauges.refresh` read.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from engines.errors import AlgoError
from engines.readiness import TASKS
from storage import REDIS_UNREACHABLE
from storage.tasks import TaskStats

if TYPE_CHECKING:
    from engines.runtime import Runtime

log = logging.getLogger(__name__)

PART_TIMEOUT_S = 2.0
T = TypeVar("T")


@dataclass
class Snapshot:
    """One reading; a part that could not be read is None."""

    phases: dict[str, str] = field(default_factory=dict)  # readiness: waiting | starting | ready | failed
    tasks: dict[str, int] | None = None  # queued, running
    ended: TaskStats | None = None  # tasks ended so far, by status; their latency by algorithm
    actors: dict[str, int] | None = None  # active, passivated
    active_by_template: dict[str, int] = field(default_factory=dict)
    activations: dict[str, int] = field(default_factory=dict)  # so far, by template (kept in Redis)
    pipelines: list[dict[str, Any]] | None = None  # each one's name, lag, rate_in, dead, live_consumers


class RuntimeGauges(Collector):
    """A Prometheus collector over a runtime; call :meth:`refresh` before each scrape."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.last = Snapshot()

    async def refresh(self) -> Snapshot:
        rt = self.runtime
        tasks, actors, pipelines = await asyncio.gather(
            _part("task queue", self._tasks()), _part("actors", self._actors()),
            _part("pipelines", rt.pipelines.list()))
        snap = Snapshot(phases={name: p["status"] for name, p in rt.readiness.report().items()},
                        tasks=tasks[0] if tasks else None, ended=tasks[1] if tasks else None, pipelines=pipelines)
        if actors is not None:
            snap.actors, snap.active_by_template, snap.activations = actors
        self.last = snap
        return snap

    async def _tasks(self) -> tuple[dict[str, int], TaskStats] | None:
        if not self.runtime.readiness.is_ready(TASKS):
            return None
        store = await self.runtime.tasks.store()
        (waiting, claimed), ended = await asyncio.gather(store.queue_counts(), store.ended_stats())
        return {"queued": waiting, "running": claimed}, ended

    async def _actors(self) -> tuple[dict[str, int], dict[str, int], dict[str, int]] | None:
        actors = self.runtime.actors
        if not actors.templates:
            return None
        bound = await actors.store.count()
        hosts: dict[str, dict[str, Any]] = {}  # templates of one placement share a pool: each host once
        for template in actors.templates:
            try:
                hosts |= {h["host"]: h for h in await actors.hosts(template)}
            except AlgoError:  # its hosts are not running (yet): all of its actors are passivated
                continue
        by_template = Counter(a["template"] for h in hosts.values() for a in h["actors"].values())
        active = sum(h["active"] for h in hosts.values())
        return {"active": active, "passivated": max(0, bound - active)}, dict(by_template), \
            await actors.store.activations()

    def collect(self) -> Iterator[Metric]:
        snap = self.last
        yield _family(GaugeMetricFamily, "algo_mcp_calls_queued", "calls of this gateway waiting for a replica slot "
                      "(Serve's router queue, bounded by max_queued)", "algorithm", self.runtime.calls.queued())
        yield _family(GaugeMetricFamily, "algo_mcp_ready", "1 when a part of the runtime (an algorithm, the task "
                      "store, Ray, the task worker) is up", "part",
                      {name: 1.0 if state == "ready" else 0.0 for name, state in snap.phases.items()})
        if snap.tasks is not None:
            yield _family(GaugeMetricFamily, "algo_mcp_tasks", "tasks in the queue now: queued (not taken by a "
                          "worker yet) and running (taken, not ended)", "status", snap.tasks)
            yield GaugeMetricFamily("algo_mcp_task_queue_depth", "tasks waiting for a worker",
                                    value=snap.tasks["queued"])
        if snap.ended is not None:
            yield from _task_families(snap.ended)
        if snap.actors is not None:
            yield _family(GaugeMetricFamily, "algo_mcp_actors", "bound actors: active on a host, or passivated "
                          "(state stored, nothing running)", "state", snap.actors)
            yield _family(GaugeMetricFamily, "algo_mcp_actors_active", "active actors, by template", "template",
                          snap.active_by_template)
            yield _family(CounterMetricFamily, "algo_mcp_actor_activations", "actor activations so far (a call "
                          "finding its actor on no host), by template", "template", snap.activations)
        if snap.pipelines is not None:
            yield from _pipeline_families(snap.pipelines)


def _family(kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, documentation: str, label: str,
            values: Mapping[str, float]) -> Metric:
    """A family with one label, a sample per entry of ``values``."""
    family = kind(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _task_families(stats: TaskStats) -> Iterator[Metric]:
    """Counters kept in Redis by the task store as tasks end (any gateway reads the same)."""
    yield _family(CounterMetricFamily, "algo_mcp_tasks_ended", "tasks ended so far, by status", "status", stats.ended)
    latency = HistogramMetricFamily("algo_mcp_task_duration_seconds", "tasks' time from submission to end",
                                    labels=["algorithm"])
    for algorithm, buckets in sorted(stats.latency.items()):
        cumulative, running = [], 0
        for bound, n in sorted(buckets.items()):
            running += n
            if bound != math.inf:
                cumulative.append((f"{bound:g}", running))
        latency.add_metric([algorithm], [*cumulative, ("+Inf", running)], stats.latency_sum.get(algorithm, 0.0))
    yield latency


def _pipeline_families(pipelines: list[dict[str, Any]]) -> Iterator[Metric]:
    lag = GaugeMetricFamily("algo_mcp_pipeline_lag", "messages in the input topic not yet consumed",
                            labels=["pipeline"])
    rate = GaugeMetricFamily("algo_mcp_pipeline_messages_per_second", "messages consumed per second, as the "
                             "consumers last reported", labels=["pipeline"])
    consumers = GaugeMetricFamily("algo_mcp_pipeline_consumers", "live consumers", labels=["pipeline"])
    errors = CounterMetricFamily("algo_mcp_pipeline_errors", "messages sent to the dead-letter topic (reset when "
                                 "a consumer restarts)", labels=["pipeline"])
    for p in pipelines:
        lag.add_metric([p["name"]], p["total_lag"])
        rate.add_metric([p["name"]], p["rate_in"])
        consumers.add_metric([p["name"]], p["live_consumers"])
        errors.add_metric([p["name"]], p["dead"])
    yield from (lag, rate, consumers, errors)


async def _part(what: str, reading: Awaitable[T]) -> T | None:
    try:
        return await asyncio.wait_for(reading, PART_TIMEOUT_S)
    except (*REDIS_UNREACHABLE, AlgoError, TimeoutError) as exc:
        log.debug("metrics: %s not read (%s)", what, exc)
        return None
