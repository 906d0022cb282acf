"""Dynamic batching: ``text-embedding`` (MiniLM) with 32 concurrent callers, batching on vs off.

Both variants are the registry's ``text-embedding`` entry under a new name, with
``batch`` on or off and 1 CPU each, deployed side by side and measured one after
the other (alternating rounds) through ``engines.serving.client.AlgorithmClient``,
the path every gateway call takes. Goal: calls/s(batched) / calls/s(unbatched) ≥ 4x.

Run from the repo root: ``python bench/bench_batching.py``.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

from _common import Call, compare, concurrent, local_ray, note, print_table, ratio_cell, run, stats_cells
from ray import serve

from engines.algorithms.registry import AlgorithmSpec, BatchSpec, Registry
from engines.builtin.embedding import MiniLM
from engines.serving.client import AlgorithmClient
from engines.serving.deploy import AlgorithmApp
from engines.settings import Settings

SOURCE = "text-embedding"
CALLERS, CALLS_PER_CALLER, WARMUP_PER_CALLER = 32, 20, 2
THROUGHPUT_GOAL = 4.0


def variant(spec: AlgorithmSpec, name: str, batch: BatchSpec | None) -> AlgorithmSpec:
    # 1 CPU each: both fit the 2-CPU machine, and Ray gives each replica one torch thread.
    return spec.model_copy(update={"name": name, "batch": batch, "max_concurrency": 64, "num_workers": 1,
                                   "num_cpus": 1, "num_gpus": 0})


def deploy(registry: Registry, settings: Settings) -> None:
    """The replicas a gateway would run for these entries, without its task worker."""
    apps = [AlgorithmApp(entry, settings) for entry in registry]
    serve.run_many([serve.RunTarget(target=app.build(), name=app.name, route_prefix=None) for app in apps])


def embed_call(client: AlgorithmClient, registry: Registry, name: str) -> Call:
    """One short, distinct text per call, validated as a gateway does."""
    counter = itertools.count()

    async def call() -> object:
        _, inp = registry.validate(name, {"texts": [f"short sentence number {next(counter)} about cats"]})
        return await client.call(name, inp, 60)

    return call


async def model_ceiling(batch_size: int) -> tuple[float, float]:
    """Seconds per text for the model alone, in this process on one thread: 1 text, then ``batch_size``.

    Their ratio is the most batching can give on this machine, whatever serves the calls.
    """
    import torch

    torch.set_num_threads(1)  # as Ray gives a 1-CPU replica
    model = MiniLM()
    await model.setup()
    texts = [f"short sentence number {i} about cats" for i in range(batch_size)]
    per_text = []
    for n in (1, batch_size):
        model._embed(texts[:n])  # warm up
        repeats = max(3, 48 // n)
        start = time.perf_counter()
        for _ in range(repeats):
            model._embed(texts[:n])
        per_text.append((time.perf_counter() - start) / repeats / n)
    return per_text[0], per_text[1]


async def main() -> None:
    settings = Settings(log_level="WARNING")
    spec = Registry.load(settings.algo_mcp_registry).get(SOURCE).spec
    variants = {"unbatched": variant(spec, f"{SOURCE}-unbatched", None),
                "batched": variant(spec, f"{SOURCE}-batched", spec.batch)}
    registry = Registry.from_specs([(f"bench variant {s.name}", s) for s in variants.values()])
    note("starting Ray")
    with tempfile.TemporaryDirectory(prefix="algo-mcp-bench-") as tmp:
        async with local_ray(Path(tmp)):
            note(f"deploying {', '.join(registry.names())}")
            deploy(registry, settings)
            client = AlgorithmClient()
            calls = {label: embed_call(client, registry, s.name) for label, s in variants.items()}
            note(f"{CALLERS} callers x {CALLS_PER_CALLER} calls per variant")
            stats = await compare(calls, concurrent(CALLERS), n=CALLS_PER_CALLER, warmup=WARMUP_PER_CALLER,
                                  rounds=2)
            note("shutting down Ray")
    ratio = stats["batched"].calls_per_s / stats["unbatched"].calls_per_s
    print(f"\nBatching: `{SOURCE}` (all-MiniLM-L6-v2, 1 CPU replica), {CALLERS} concurrent callers x "
          f"{CALLS_PER_CALLER} calls of 1 short text each, via AlgorithmClient; ratio = calls/s "
          "batched / unbatched.\n")
    assert spec.batch is not None, f"{SOURCE} has no batch in the registry"
    batch = f"max {spec.batch.max_batch_size}, wait {spec.batch.batch_wait_timeout_s * 1e3:g} ms"
    rows = [["unbatched", "off", *stats_cells(stats["unbatched"]), "", ""],
            ["batched", batch, *stats_cells(stats["batched"]),
             *ratio_cell(ratio, THROUGHPUT_GOAL, at_most=False)]]
    print_table(["variant", "batch", "p50 ms", "p99 ms", "calls/s", "throughput ratio", "goal"],
                rows)
    single, batched = await model_ceiling(spec.batch.max_batch_size)
    print(f"\nThe model alone, one thread: {single * 1e3:.1f} ms for 1 text, {batched * 1e3:.1f} ms per text in a "
          f"batch of {spec.batch.max_batch_size}: at most {single / batched:.2f}x from batching on this machine.")


if __name__ == "__main__":
    run(main)
