"""Call metrics of one gateway, in its own Prometheus registry, counted in one place for every face.

Every algorithm call, whatever face it came through (an MCP tool, REST ``/invoke`` or
``/tasks``), passes :meth:`Metrics.observe` in ``engines.calls``; the face only says who
it is by setting :data:`current_request` (``mcp_server.observe``), and reads back what
the call was (algorithm, outcome) for its log line. The registry is the gateway's, not
``prometheus_client``'s global one, so several gateways can live in one process.

Outcomes, from the error a call ended with (``engines.errors``): ``ok``, ``invalid``
(the input broke a rule, no such algorithm, too large), ``busy``, ``starting``,
``unavailable``, ``timeout``, ``upstream`` (an external API failed), ``not_configured``,
``failed`` (a task ended without a result), ``cancelled`` (the caller went away),
``error`` (anything else).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter as Tally
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.process_collector import ProcessCollector

from engines.errors import (
    Busy,
    NotConfigured,
    Starting,
    TaskFailed,
    TimedOut,
    TooLarge,
    Unavailable,
    UnknownAlgorithm,
    UpstreamFailed,
    ValidationFailed,
)

#: first match wins: a subclass before its base
OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (ValidationFailed, "invalid"), (UnknownAlgorithm, "invalid"), (TooLarge, "invalid"),
    (Busy, "busy"), (Starting, "starting"), (TimedOut, "timeout"), (UpstreamFailed, "upstream"),
    (NotConfigured, "not_configured"), (Unavailable, "unavailable"), (TaskFailed, "failed"),
    (asyncio.CancelledError, "cancelled"),
)
#: seconds: a cached embedding (milliseconds) up to a video model's long call (minutes)
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


def outcome_of(exc: BaseException) -> str:
    return next((name for kind, name in OUTCOMES if isinstance(exc, kind)), "error")


@dataclass
class Request:
    """One request at a face: set by the face, filled in by the call it makes."""

    transport: str  # mcp | rest
    request_id: str
    algorithm: str | None = None
    outcome: str | None = None


#: the request being served in this context (None: a call from inside the gateway, a test)
current_request: ContextVar[Request | None] = ContextVar("algo_mcp_request", default=None)
_observing: ContextVar[bool] = ContextVar("algo_mcp_observing", default=False)


class Metrics:
    """The gateway's registry and its call metrics; scrape-time collectors register here too."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter("algo_mcp_calls", "algorithm calls, by the face they came through and how they ended",
                             ["algorithm", "transport", "outcome"], registry=r)
        self.duration = Histogram("algo_mcp_call_duration_seconds", "algorithm calls' duration, as the caller waited",
                                  ["algorithm", "transport"], buckets=DURATION_BUCKETS, registry=r)
        self.in_flight = Gauge("algo_mcp_calls_in_flight", "algorithm calls this gateway is waiting on now",
                               ["algorithm"], registry=r)
        self.busy = Counter("algo_mcp_busy_refusals", "calls refused at once because every slot and queue place "
                            "was taken", ["algorithm"], registry=r)
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, …
        self.running: Tally[str] = Tally()  # in flight, by algorithm, for the debug log

    @contextmanager
    def observe(self, algorithm: str) -> Iterator[None]:
        """Count one call of ``algorithm`` (once: a call made inside an observed one is the same call)."""
        if _observing.get():
            yield
            return
        token = _observing.set(True)
        self.in_flight.labels(algorithm).inc()
        self.running[algorithm] += 1
        began, outcome = time.perf_counter(), "error"
        try:
            yield
            outcome = "ok"
        except BaseException as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            _observing.reset(token)
            self.running[algorithm] -= 1
            self.in_flight.labels(algorithm).dec()
            self.count(algorithm, outcome, time.perf_counter() - began)

    def count(self, algorithm: str, outcome: str, seconds: float = 0.0) -> None:
        """One ended call; a face calls it itself only for a call refused before it reached
        ``engines.calls`` (REST bodies are validated by FastAPI, ahead of the route)."""
        request = current_request.get()
        transport = request.transport if request else "internal"
        if request is not None:
            request.algorithm, request.outcome = algorithm, outcome
        self.duration.labels(algorithm, transport).observe(seconds)
        self.calls.labels(algorithm, transport, outcome).inc()
        if outcome == "busy":
            self.busy.labels(algorithm).inc()
