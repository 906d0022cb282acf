"""A gateway stops in order on SIGTERM, Ctrl-C or (stdio) stdin closed, whether its local cluster is
still starting or running, and with ``LOCAL_CLUSTER_LINGER_S=0`` that cluster (Ray, the bundled Redis,
their keeper) stops right after: nothing it started is left running. (Ray's own SIGTERM handler
would abort the process and could strand them.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, START_DEADLINE_S, free_port
from tests.polling import poll
from tests.processes import clean_up, marked, new_mark, redis_running

STOP_DEADLINE_S = 120


def started(env: dict[str, str], *names: str) -> bool:
    running = " ".join(marked(env).values())
    return all(name in running for name in names)


@pytest.mark.parametrize(("transport", "signum", "when"), [
    ("stdio", signal.SIGTERM, "running"), ("stdio", signal.SIGINT, "starting"), ("stdio", None, "running"),
    ("http", signal.SIGTERM, "starting")])
async def test_stopping_the_gateway_stops_its_local_cluster(transport: str, signum: int | None, when: str,
                                                           tmp_path: Path):
    """``starting``: the signal lands while the keeper is still starting Ray."""
    registry = tmp_path / "algorithms.yaml"
    echo = next(e for e in yaml.safe_load((ROOT / "algorithms.yaml").read_text()) if e["name"] == "local-echo")
    registry.write_text(yaml.safe_dump([echo]))
    mark, data, err = new_mark(), tmp_path / "data", tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "REDIS_URL")}  # a cluster of its own
    env.update(ALGO_MCP_REGISTRY=str(registry), DATA_DIR=str(data), LOG_LEVEL="INFO",
               SERVICE_PORT=str(free_port()), FASTMCP_CHECK_FOR_UPDATES="off", LOCAL_CLUSTER_LINGER_S="0", **mark)
    with err.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcp_server", "serve", "--transport", transport, cwd=ROOT, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=stderr)
    try:
        if when == "running":
            await poll(lambda: started(mark, "local_cluster", "raylet") and redis_running(data),
                       timeout_s=START_DEADLINE_S, interval_s=0.1, what="the local cluster running")
        else:
            await poll(lambda: started(mark, "local_cluster"), timeout_s=START_DEADLINE_S, interval_s=0.05,
                       what="the local cluster starting")
        if signum is None:
            proc.stdin.close()  # type: ignore[union-attr]
        else:
            proc.send_signal(signum)  # stdin stays open: the stdio reader is blocked in read()
        code = await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
        assert code == 0, err.read_text()[-3000:]
        await poll(lambda: not marked(mark) and not redis_running(data), timeout_s=STOP_DEADLINE_S,
                   interval_s=0.5, what="everything the gateway started stopped")
    finally:
        if proc.returncode is None:
            proc.kill()
        clean_up(mark, data)
