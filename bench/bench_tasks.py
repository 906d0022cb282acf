"""Long jobs: no-op tasks submitted → completed per second, against the same algorithm called sync.

``local-echo`` is called two ways in the same run, through one gateway runtime:
synchronously (``Calls.invoke``, the sync tool path), and as tasks through the
Redis task queue and the task-worker deployment (the async tool path), with the same
number of concurrent callers. Task latency is ``finished_at - created_at``
from the records (the server's clock). Goals: ≥ 500 completed tasks/s on 2
cores, and async throughput ≥ 0.5x sync.

Run from the repo root: ``python bench/bench_tasks.py``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from _common import Sample, concurrent, note, print_table, ratio_cell, run, stats_cells

from engines.algorithms.registry import Registry
from engines.runtime import Runtime
from engines.settings import Settings
from engines.tasks.queue import TaskQueue

CALLERS, PER_CALLER, WARMUP = 64, 90, 3
TASKS_PER_S_GOAL, RATIO_GOAL = 500.0, 0.5


async def tasks_sample(queue: TaskQueue, n: int) -> Sample:
    """Submit ``n`` tasks from CALLERS submitters and wait for them all to end."""
    counter = iter(range(n))

    async def submitter() -> list[str]:
        return [(await queue.submit("local-echo", {"text": f"t{i}"})).task_id for i in counter]

    start = time.perf_counter()
    ids = [i for batch in await asyncio.gather(*(submitter() for _ in range(CALLERS))) for i in batch]
    records = await asyncio.gather(*(queue.wait(i, 300) for i in ids))
    wall = time.perf_counter() - start
    assert all(r.status.value == "completed" for r in records), {r.status for r in records}
    return Sample([r.finished_at - r.created_at for r in records], wall)


async def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="algo-mcp-bench-"))
    settings = Settings(log_level="WARNING", data_dir=data_dir)
    registry = Registry.from_specs([("bench", Registry.load(settings.algo_mcp_registry).get("local-echo").spec)])
    note("starting Ray, the bundled Redis, local-echo and the task worker")
    async with Runtime(settings, registry) as runtime:
        await runtime.started()
        queue = runtime.tasks
        sync_call = lambda: runtime.calls.invoke("local-echo", {"text": "s"})  # noqa: E731
        note("warming up")
        await concurrent(CALLERS)(sync_call, WARMUP)
        await tasks_sample(queue, CALLERS * WARMUP)
        sync, tasks = Sample(), Sample()
        for r in range(3):  # alternate, so a busy machine skews both alike
            note(f"round {r + 1}/3")
            sync.extend(await concurrent(CALLERS)(sync_call, PER_CALLER // 3))
            tasks.extend(await tasks_sample(queue, CALLERS * PER_CALLER // 3))
    s, t = sync.stats(), tasks.stats()
    ratio, goal = ratio_cell(t.calls_per_s / s.calls_per_s, RATIO_GOAL, at_most=False)
    print_table(["local-echo, 64 concurrent callers", "p50 ms", "p99 ms", "completed/s", "vs sync", "goal"], [
        ["sync (baseline)", *stats_cells(s), "1.00x", ""],
        ["tasks (submit → worker → done)", *stats_cells(t), ratio, goal],
    ])
    met = "✓" if t.calls_per_s >= TASKS_PER_S_GOAL else "✗"
    print(f"\ncompleted tasks/s: {t.calls_per_s:.0f} (goal ≥ {TASKS_PER_S_GOAL:g} {met})")


if __name__ == "__main__":
    run(main)
