"""Find the processes a test started, however deep (a gateway, its cluster's keeper, Ray): each
carries a marker in its environment, inherited from the gateway the test spawned. The bundled
Valkey starts with an environment of its own, so it is found by its pid file instead."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from uuid import uuid4

from storage import pid_alive

MARK = "ALGO_MCP_TEST_MARK"


def new_mark() -> dict[str, str]:
    """Environment to give a spawned gateway; everything it starts inherits it."""
    return {MARK: uuid4().hex}


def marked(env: dict[str, str]) -> dict[int, str]:
    """Live processes carrying ``env``'s marker, with their command lines (zombies have no environ)."""
    needle = f"{MARK}={env[MARK]}".encode()
    found = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                found[int(proc.name)] = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
        except OSError:
            continue  # ended meanwhile, or not ours to read
    return found


def clean_up(env: dict[str, str], data_dir: Path) -> None:
    """After a test, whatever happened: the local cluster of ``data_dir`` stopped in order (its keeper
    stops Ray and Redis), then anything of the test's still running killed, the bundled Redis too."""
    from engines import local_cluster

    local_cluster.stop(data_dir, timeout_s=30)
    for pid in marked(env):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError):
        pid = int((data_dir / "redis" / "valkey.pid").read_text())
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def redis_running(data_dir: Path) -> bool:
    """The bundled Redis of ``data_dir`` runs."""
    try:
        return pid_alive(int((data_dir / "redis" / "valkey.pid").read_text()))
    except (OSError, ValueError):
        return False
