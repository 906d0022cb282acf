"""A gateway killed with SIGKILL mid-task, started again on the same DATA_DIR, loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import DEVNULL
from dataclasses import replace
from pathlib import Path

import httpx
from ray import serve

from engines.tasks.worker import worker_app_name
from tests.conftest import Running, free_port, poll
from tests.test_limits import marked

ROOT = Path(__file__).resolve().parents[1]


async def start_gateway(env: dict[str, str], url: str) -> asyncio.subprocess.Process:
    """``algo-mcp serve`` on the embedded Redis of ``DATA_DIR``, joined to the session's Ray."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mcp_server", "serve", "--transport", "http",
                                                cwd=ROOT, env=env, stdout=DEVNULL, stderr=DEVNULL)

    async def healthy() -> bool:
        assert proc.returncode is None, "the gateway exited during start-up"
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await poll(healthy, timeout_s=240, interval_s=0.5, what="the gateway healthy")
    return proc


async def test_a_task_survives_a_killed_gateway(server: Running, settings, tmp_path: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**server.env, "SERVICE_PORT": str(port), "DATA_DIR": str(tmp_path / "data"),
           "ALGO_MCP_REGISTRY": str(settings.algo_mcp_registry)}
    env.pop("REDIS_URL")  # the gateway's own bundled Redis, data under DATA_DIR
    marker = tmp_path / "long-task"
    first = await start_gateway(env, url)
    try:
        async with httpx.AsyncClient(base_url=url, headers=server.auth) as http:
            body = {"seconds": 4, "marker": str(marker)}
            submitted = await http.post("/tasks/test-sleep-async", json=body)
            task_id = submitted.json()["task_id"]
            await poll(marked(marker, "started"))
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
    port_file = tmp_path / "data" / "redis" / "port"
    first_port = port_file.read_text()
    second = await start_gateway(env, url)
    # The same Redis URL, so the same task worker: it takes the task over, nothing is deployed twice.
    assert port_file.read_text() == first_port
    try:
        async with httpx.AsyncClient(base_url=url, headers=server.auth) as http:
            async def ended() -> dict | None:
                record = (await http.get(f"/tasks/{task_id}")).json()
                return record if record["status"] in ("completed", "failed", "cancelled") else None

            record = await poll(ended, timeout_s=120, interval_s=0.5, what="the task ended")
        assert record["status"] == "completed" and record["result"] == {"slept": 4}
    finally:
        second.send_signal(signal.SIGINT)
        await asyncio.wait_for(second.wait(), 60)
        # A gateway leaves its task worker on a shared cluster (queued tasks still finish); the
        # session's cluster has CPUs for one more only, so this test takes its own away.
        queue = replace(server.gateway.runtime.tasks.config, redis_url=f"redis://127.0.0.1:{first_port.strip()}/0")
        worker = worker_app_name(queue)
        assert worker in serve.status().applications
        await asyncio.to_thread(serve.delete, worker)
