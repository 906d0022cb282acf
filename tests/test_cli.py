"""``algo-mcp serve`` refuses what it cannot do with a message rather than a traceback: at once when it
can tell (a taken port), else as soon as start-up finds it (a missing GPU, a model that will not load)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray import serve

from mcp_server.listen import listening_socket
from tests.conftest import ROOT, START_DEADLINE_S, Running, free_port


def test_serve_on_a_taken_port_fails_before_starting_anything(tmp_path: Path):
    with listening_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", str(port)],
                              capture_output=True, text=True, timeout=120, cwd=ROOT,
                              env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"),
                                   "FASTMCP_CHECK_FOR_UPDATES": "off"})
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in proc.stderr
    assert "--port or SERVICE_PORT" in proc.stderr and "Traceback" not in proc.stderr
    assert "ray" not in proc.stderr.lower()  # refused before Ray was started
    assert not (tmp_path / "data" / "redis").exists()  # ... and before the bundled Redis


async def serve_with_registry(server: Running, tmp_path: Path, entry: dict[str, object]) -> tuple[int, str]:
    """``algo-mcp serve --transport http`` on the session's cluster, Redis and task worker, with a
    registry of one ``entry``, until it exits; its exit code and stderr."""
    registry = tmp_path / "algorithms.yaml"
    registry.write_text(yaml.safe_dump([{"kind": "local", "description": "a test entry", **entry}]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", str(free_port()),
        cwd=ROOT, env={**server.env, "ALGO_MCP_REGISTRY": str(registry)},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await asyncio.wait_for(proc.communicate(), timeout=START_DEADLINE_S)
    return proc.returncode or 0, stderr.decode()


@pytest.mark.asyncio(loop_scope="session")
async def test_serve_over_http_stops_with_one_line_when_a_gpu_is_missing(server: Running, tmp_path: Path):
    code, stderr = await serve_with_registry(server, tmp_path, {"name": "needs-a-gpu", "num_gpus": 1,
                                                               "target": "tests.algorithms:Crash"})
    assert code == 2 and "Traceback" not in stderr
    assert stderr.rstrip().endswith("algo-mcp: needs-a-gpu: num_gpus 1 asked for, but the Ray cluster has 0 GPU(s); "
                                    "set num_gpus: 0 to run on CPU or add GPU nodes")


@pytest.mark.asyncio(loop_scope="session")
async def test_serve_over_http_stops_with_the_reason_when_a_model_cannot_load(server: Running, tmp_path: Path):
    name = "test-broken-setup"
    try:
        code, stderr = await serve_with_registry(server, tmp_path, {"name": name, "num_cpus": 0.01,
                                                                   "target": "tests.algorithms:BrokenSetup"})
    finally:
        serve.delete(name)
    assert code == 2 and "Traceback" not in stderr
    assert stderr.rstrip().endswith(
        f"algo-mcp: {name}: deployment failed: RuntimeError: weights not found at /models/broken.bin (The "
        "deployment failed to start 3 times in a row; the traceback is in the Serve logs)")
