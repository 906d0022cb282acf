"""Start-up as a desktop client sees it: ``algo-mcp serve --transport stdio`` spawned, then the time
to ``initialize`` answered, ``tools/list``, the first ``local-echo`` result and the first
``text-embedding`` result, with the default registry.

Cold: no cluster runs for the gateway's data folder (a fresh one each round), so it starts the
local cluster (Ray, Redis) and every deployment. Warm: a second gateway on the same folder while
the first one's cluster lingers (``LOCAL_CLUSTER_LINGER_S``). Beside them, from the same run, the
floor of any design that starts Ray first: a bare ``ray.init()`` plus ``serve.start()`` in a fresh
process. Goals on 2 cores: initialize ≤ 2 s cold; first local-echo ≤ 30 s cold and ≤ 5 s warm.

Each figure is the median of ``ROUNDS`` rounds. Gateways run with bytecode caching on, as
installed Python does (this machine's ``PYTHONDONTWRITEBYTECODE`` would recompile every module on
every start); a first unmeasured start fills the cache.

Run from the repo root: ``python bench/bench_startup.py``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import note, print_table, run
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

from engines import local_cluster

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
LINGER_S = 120
GOALS = {("cold", "initialize"): 2.0, ("cold", "local-echo"): 30.0, ("warm", "local-echo"): 5.0}
CALLS = {"local-echo": {"text": "hi"}, "text-embedding": {"texts": ["hi"]}}
FLOOR = """
import time, ray
from ray import serve
ray.init(include_dashboard=False, log_to_driver=False)
serve.start(proxy_location="Disabled")
print(time.time(), flush=True)
ray.shutdown()
"""


def gateway_env(data_dir: Path) -> dict[str, str]:
    env = {**os.environ, "DATA_DIR": str(data_dir), "LOCAL_CLUSTER_LINGER_S": str(LINGER_S),
           "LOG_LEVEL": "WARNING", "FASTMCP_CHECK_FOR_UPDATES": "off"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


async def first_result(client: Client, tool: str) -> None:
    """Call until it answers (a call may wait for its algorithm, or be told it is starting)."""
    while (await client.call_tool(tool, CALLS[tool], raise_on_error=False)).is_error:
        await asyncio.sleep(0.2)


async def start_once(data_dir: Path) -> dict[str, float]:
    """Seconds from spawning a stdio gateway to each milestone."""
    transport = StdioTransport(str(Path(sys.executable).with_name("algo-mcp")), ["serve", "--transport", "stdio"],
                               env=gateway_env(data_dir), cwd=str(ROOT), keep_alive=False)
    spawned = time.perf_counter()
    seen = {}
    async with Client(transport, timeout=120) as client:
        seen["initialize"] = time.perf_counter() - spawned
        await client.list_tools()
        seen["tools/list"] = time.perf_counter() - spawned
        for tool in CALLS:
            await first_result(client, tool)
            seen[tool] = time.perf_counter() - spawned
    return seen


def floor_once() -> float:
    """A bare ``ray.init()`` + ``serve.start()``: seconds from spawn until Serve is up."""
    spawned = time.time()
    done = subprocess.run([sys.executable, "-c", FLOOR], capture_output=True, text=True, check=True,
                          env={**os.environ, "RAY_ADDRESS": ""}, timeout=300)
    return float(done.stdout.split()[-1]) - spawned


async def main() -> None:
    samples: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    floors = []
    with tempfile.TemporaryDirectory(prefix="algo-mcp-bench-") as tmp:
        note("a first start, unmeasured: fills the bytecode cache")
        await start_once(Path(tmp) / "prime")
        local_cluster.stop(Path(tmp) / "prime")
        for r in range(ROUNDS):
            data_dir = Path(tmp) / f"round-{r}"
            note(f"round {r + 1}/{ROUNDS}: floor")
            floors.append(await asyncio.to_thread(floor_once))
            note(f"round {r + 1}/{ROUNDS}: cold")
            samples["cold"].append(await start_once(data_dir))
            note(f"round {r + 1}/{ROUNDS}: warm (the first gateway's cluster lingers)")
            samples["warm"].append(await start_once(data_dir))
            await asyncio.to_thread(local_cluster.stop, data_dir)
    milestones = ["initialize", "tools/list", *CALLS]
    rows = [["bare `ray.init()` + `serve.start()` (floor)", "", "", f"{statistics.median(floors):.1f}", "", "", ""]]
    for kind, runs in samples.items():
        cells, verdicts = [], []
        for milestone in milestones:
            value = statistics.median(run_[milestone] for run_ in runs)
            cells.append(f"{value:.1f}")
            goal = GOALS.get((kind, milestone))
            if goal is not None:
                verdicts.append(f"{milestone} ≤ {goal:g} s {'✓' if value <= goal else '✗'}")
        rows.append([f"algo-mcp, {kind}", *cells[:2], "", *cells[2:], "; ".join(verdicts)])
    print(f"\nStart-up over stdio, seconds from spawn, median of {ROUNDS} rounds (default registry).\n")
    print_table(["start", "initialize", "tools/list", "Ray + Serve up", "first local-echo", "first text-embedding",
                 "goal"], rows)


if __name__ == "__main__":
    run(main)
