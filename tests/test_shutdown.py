"""A gateway that started its own Ray stops it, and the bundled Redis, when stopped (SIGTERM, Ctrl-C,
or stdin closed): nothing is left running. (Ray's native SIGTERM handler would abort the process and
could strand them.)"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, START_DEADLINE_S, free_port

SERVING = {"stdio": "Starting MCP server", "http": "Application startup complete"}
STOP_DEADLINE_S = 120


def descendants(pid: int) -> dict[int, bytes]:
    """Every process under ``pid``, with its command line (to tell a reused pid from it)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found[child] = _cmdline(child)
                frontier.append(child)
    return {p: c for p, c in found.items() if c}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


async def read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError(f"the gateway exited before {marker!r}:\n{''.join(seen)}")
        seen.append(line.decode(errors="replace"))
        if marker in seen[-1]:
            return


@pytest.mark.parametrize(("transport", "signum"), [("stdio", signal.SIGTERM), ("stdio", signal.SIGINT),
                                                   ("stdio", None), ("http", signal.SIGTERM)])
async def test_stopping_stops_the_local_ray_and_redis_the_gateway_started(transport: str, signum: int | None,
                                                                          tmp_path: Path):
    """By a signal, or (stdio) by the client closing stdin, the MCP way to end a session."""
    registry = tmp_path / "algorithms.yaml"
    echo = next(e for e in yaml.safe_load((ROOT / "algorithms.yaml").read_text()) if e["name"] == "local-echo")
    registry.write_text(yaml.safe_dump([echo]))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a Ray of its own, not the session's
    env.update(ALGO_MCP_REGISTRY=str(registry), DATA_DIR=str(tmp_path / "data"), LOG_LEVEL="INFO",
               SERVICE_PORT=str(free_port()), FASTMCP_CHECK_FOR_UPDATES="off")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_server", "serve", "--transport", transport, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    seen: list[str] = []
    children: dict[int, bytes] = {}
    try:
        assert proc.stderr is not None
        await asyncio.wait_for(read_until(proc.stderr, SERVING[transport], seen), START_DEADLINE_S)
        children = descendants(proc.pid)
        assert any(b"raylet" in c for c in children.values()), "no local Ray under the gateway"
        assert any(b"valkey-server" in c for c in children.values()), "no bundled Redis under the gateway"
        if signum is None:
            proc.stdin.close()  # type: ignore[union-attr]
        else:
            proc.send_signal(signum)  # stdin stays open: the stdio reader is blocked in read()
        drain = asyncio.ensure_future(read_until(proc.stderr, "\0never\0", seen))
        code = await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
        drain.cancel()
        assert code == 0, "".join(seen[-20:])
        left = [c.replace(b"\0", b" ")[:80] for p, c in children.items() if _cmdline(p) == c]
        assert left == [], f"still running after the gateway stopped: {left}"
    finally:
        if proc.returncode is None:
            proc.kill()
        for pid, cmdline in children.items():
            if _cmdline(pid) == cmdline:
                os.kill(pid, signal.SIGKILL)
