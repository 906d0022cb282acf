"""The local cluster's keeper, with only the bundled Redis (no Ray, so these are quick): shared by
every gateway on a data folder, kept alive, shown and stopped by ``algo-mcp cluster``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from engines import local_cluster
from engines.local_cluster import LocalCluster
from storage import REDIS_UNREACHABLE, TaskStore, redis_pool
from tests.conftest import ROOT
from tests.polling import poll


def cli(data: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mcp_server", "cluster", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, check=True, env={**os.environ, "DATA_DIR": str(data)})
    return done.stdout


async def test_two_gateways_share_one_redis_and_cluster_stop_ends_it(tmp_path: Path):
    first, second = (LocalCluster(tmp_path, {"redis"}, linger_s=600) for _ in range(2))
    await first.join()
    url = await first.address("redis")
    await second.join()
    assert await second.address("redis") == url
    status = json.loads(cli(tmp_path, "status"))
    assert status["running"] and status["in_use"] and status["keeper"]["redis_url"] == url
    first.leave()
    second.leave()
    assert json.loads(cli(tmp_path, "status"))["in_use"] is False  # lingering, 600 s
    keeper = local_cluster.current(tmp_path)
    assert keeper is not None
    assert cli(tmp_path, "stop").startswith("stopped the local cluster")
    assert json.loads(cli(tmp_path, "status")) == {"data_dir": str(tmp_path), "running": False}
    assert "no local cluster runs" in cli(tmp_path, "stop")


async def test_the_keeper_starts_a_redis_that_died_again_with_its_data(tmp_path: Path):
    cluster = LocalCluster(tmp_path, {"redis"}, linger_s=0)
    await cluster.join()
    client = redis_pool(await cluster.address("redis"))
    try:
        store = TaskStore(client, prefix="keeper")
        before = await store.submit("local-echo", {"text": "before"})
        # appendfsync everysec: what the server has written to its file survives; wait until it has
        await poll(lambda: _in_append_only_file(tmp_path, before.task_id), what="the task in the append-only file")
        os.kill(int((tmp_path / "redis" / "valkey.pid").read_text()), signal.SIGKILL)  # as the OOM killer would

        async def submitted_again() -> str | None:
            with contextlib.suppress(*REDIS_UNREACHABLE):
                return (await store.submit("local-echo", {"text": "after"})).task_id
            return None

        await poll(submitted_again, what="tasks accepted again")
        assert (await store.get(before.task_id)).payload == {"text": "before"}  # its data came back too
    finally:
        await client.aclose()
        cluster.leave()
    await poll(lambda: local_cluster.current(tmp_path) is None, what="the keeper gone after the last gateway")


def _in_append_only_file(data_dir: Path, text: str) -> bool:
    return any(text.encode() in f.read_bytes() for f in (data_dir / "redis").rglob("*.aof*") if f.is_file())


async def test_a_gateway_arriving_while_the_last_cluster_stops_starts_a_new_one(tmp_path: Path):
    first = LocalCluster(tmp_path, {"redis"}, linger_s=0)
    await first.join()
    await first.address("redis")
    old = local_cluster.current(tmp_path)
    first.leave()  # the keeper starts stopping at once
    second = LocalCluster(tmp_path, {"redis"}, linger_s=0)
    await second.join()  # waits out the stop if it has begun
    try:
        client = redis_pool(await second.address("redis"))
        try:
            assert await client.ping()  # whichever keeper serves it, the Redis it names answers
        finally:
            await client.aclose()
        assert old is not None and local_cluster.current(tmp_path) is not None
    finally:
        second.leave()
    await poll(lambda: local_cluster.current(tmp_path) is None, what="the keeper gone")
