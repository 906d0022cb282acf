"""Shared bench helpers: timing loops, percentiles, the markdown table, Ray start-up and clean-up.

Every bench compares variants measured in the same run, in alternating
rounds, so a busy machine skews both sides alike and the ratio stays
meaningful.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.local_cluster import LocalCluster
from engines.serving import cluster
from engines.settings import Settings

cluster.prepare_env(Settings())  # Ray Serve's request path, set before anything imports ray.serve

Call = Callable[[], Awaitable[object]]
#: runs ``call`` ``n`` times (per caller, for concurrent loops) and returns what it saw
Measure = Callable[[Call, int], Awaitable["Sample"]]

_MARKER = "ALGO_MCP_BENCH_RUN"
_STARTED = time.monotonic()


@dataclass(frozen=True)
class Stats:
    calls: int
    p50_ms: float
    p99_ms: float
    calls_per_s: float


@dataclass
class Sample:
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0

    def extend(self, other: Sample) -> None:
        self.latencies_s += other.latencies_s
        self.wall_s += other.wall_s

    def stats(self) -> Stats:
        lat = self.latencies_s
        return Stats(len(lat), percentile(lat, 50) * 1e3, percentile(lat, 99) * 1e3, len(lat) / self.wall_s)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


async def sequential(call: Call, n: int) -> Sample:
    """``n`` calls one after another."""
    sample = Sample()
    start = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        await call()
        sample.latencies_s.append(time.perf_counter() - t)
    sample.wall_s = time.perf_counter() - start
    return sample


def concurrent(callers: int) -> Measure:
    """``callers`` tasks, each making ``n`` calls one after another."""

    async def measure(call: Call, n: int) -> Sample:
        sample = Sample()

        async def caller() -> None:
            for _ in range(n):
                t = time.perf_counter()
                await call()
                sample.latencies_s.append(time.perf_counter() - t)

        start = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        sample.wall_s = time.perf_counter() - start
        return sample

    return measure


async def compare(calls: dict[str, Call], measure: Measure, *, n: int, warmup: int,
                  rounds: int = 3) -> dict[str, Stats]:
    """Warm every variant up, then measure them in turn: ``rounds`` rounds of ``n // rounds`` calls each.

    The order flips every round so no variant always runs right after another.
    """
    for name, call in calls.items():
        note(f"warming up {name}")
        await measure(call, warmup)
    samples = {name: Sample() for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].extend(await measure(calls[name], n // rounds))
    return {name: s.stats() for name, s in samples.items()}


def ratio_cell(value: float, goal: float, at_most: bool) -> tuple[str, str]:
    """``("1.23x", "≤ 1.5x ✓")``: the ratio and whether it meets its goal."""
    met = value <= goal if at_most else value >= goal
    return f"{value:.2f}x", f"{'≤' if at_most else '≥'} {goal:g}x {'✓' if met else '✗'}"


def stats_cells(s: Stats) -> list[str]:
    return [f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", f"{s.calls_per_s:.0f}"]


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


def note(message: str) -> None:
    """Progress on stderr, so stdout holds only the table."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


@asynccontextmanager
async def local_ray(data_dir: Path) -> AsyncIterator[str]:
    """This process joined to a local cluster of its own (as a gateway would start one); its address."""
    local = LocalCluster(data_dir, {"ray"}, linger_s=0)
    await local.join()
    try:
        address = await local.address("ray")
        await asyncio.to_thread(cluster.connect, address)
        try:
            yield address
        finally:
            cluster.disconnect()
    finally:
        local.leave()


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI ``app`` with uvicorn in this process on a free loopback port; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                await task  # it failed to start: raise why
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await task


def run(main: Callable[[], Coroutine[Any, Any, None]],
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    """Run a bench on a private local Ray cluster, and leave no Ray process behind; ``loop_factory``:
    the event loop the gateway runs on (``mcp_server.cli.event_loop_factory()`` for uvloop, as served)."""
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    os.environ.pop("RAY_ADDRESS", None)  # never deploy bench variants onto someone's cluster
    os.environ.setdefault("LOCAL_CLUSTER_LINGER_S", "0")  # the bench's clusters stop with it
    os.environ[_MARKER] = f"{os.getpid()}-{time.time_ns()}"  # inherited by every process we start
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())
    finally:
        _shutdown_ray()
        _reap()


def _shutdown_ray() -> None:
    """A safety net: the benches leave Ray themselves; this catches early failures (the local
    cluster's keeper then stops it, the linger being 0)."""
    if "ray" in sys.modules:
        import ray

        ray.shutdown()


def _ours() -> list[int]:
    """Processes started by this run (directly or by Ray), found by the marker in their environment."""
    needle = f"{_MARKER}={os.environ[_MARKER]}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    return pids


def _reap(grace_s: float = 10.0) -> None:
    """Ray workers can outlive ``ray.shutdown`` and ignore SIGTERM: SIGKILL what is left of ours."""
    deadline = time.monotonic() + grace_s
    while (pids := _ours()) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    if pids:
        note(f"killed {len(pids)} leftover process(es) of this run: {pids}")
