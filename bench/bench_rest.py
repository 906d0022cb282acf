"""The seed's REST path: what recording every ``POST /invoke`` as a task costs.

``POST /invoke/local-echo`` over HTTP through two gateways in this process on one
cluster and one Redis: one records each call as a task record (the default,
``RECORD_SYNC_CALLS``, as the seed did), the other does not (the baseline).
Sequential calls, alternating rounds. Goal: p50(recorded) / p50(not) ≤ 1.1x.

Run from the repo root: ``python bench/bench_rest.py``.
"""

from __future__ import annotations

import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from _common import compare, note, print_table, ratio_cell, run, sequential, serving, stats_cells

from engines.algorithms.registry import Registry
from engines.settings import Settings
from mcp_server.app import build_gateway

ECHO, ARGS = "local-echo", {"text": "hello"}
CALLS, WARMUP = 600, 60
GOAL = 1.1


async def main() -> None:
    async with AsyncExitStack() as stack:
        enter = stack.enter_async_context
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="algo-mcp-bench-")))
        base = Settings(log_level="WARNING", data_dir=data)
        registry = Registry.from_specs([("bench", Registry.load(base.algo_mcp_registry).get(ECHO).spec)])
        variants = {"not recorded (baseline)": False, "recorded as a task (default)": True}
        clients = {}
        for label, record in variants.items():
            gateway = build_gateway(base.model_copy(update={"record_sync_calls": record}), registry)
            note(f"starting {label} (the second one joins the first one's cluster and deployments)")
            url = await enter(serving(gateway.http_app()))
            await gateway.runtime.started()
            http = await enter(httpx.AsyncClient(base_url=url))
            answer = (await http.post(f"/invoke/{ECHO}", json=ARGS)).json()
            assert answer["result"] == ARGS and (answer["task_id"] is not None) == record, answer
            clients[label] = http
        calls = {label: (lambda http=http: http.post(f"/invoke/{ECHO}", json=ARGS)) for label, http in clients.items()}
        stats = await compare(calls, sequential, n=CALLS, warmup=WARMUP)
        note("shutting down")
    base_stats, recorded = stats.values()
    rows = [[label, *stats_cells(s), *(ratio_cell(s.p50_ms / base_stats.p50_ms, GOAL, at_most=True)
                                       if s is recorded else ("", ""))] for label, s in stats.items()]
    print(f"\nREST `POST /invoke/{ECHO}`, {CALLS} sequential calls per row after {WARMUP} warm-up, httpx over "
          "loopback; ratio = p50 / p50 of the baseline.\n")
    print_table(["/invoke", "p50 ms", "p99 ms", "calls/s", "p50 ratio", "goal"], rows)


if __name__ == "__main__":
    run(main)
