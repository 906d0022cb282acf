"""Limits hold: busy answers come at once, cancels reach the replica, timeouts end calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import ray

from engines.deploy import check_resources
from engines.errors import Busy, NotConfigured, TimedOut
from engines.registry import AlgorithmSpec, Entry, Registry
from tests.algorithms import Sleep
from tests.conftest import Running, poll
from tests.mcp_clients import http_session


def marked(path: Path, state: str):
    return lambda: path.exists() and path.read_text() == state


async def occupy_the_slot(server: Running, tmp_path: Path, seconds: float) -> asyncio.Task:
    """Start a test-sleep call and wait until the replica runs it (its only slot)."""
    marker = tmp_path / "running"
    running = asyncio.create_task(
        server.gateway.client.invoke("test-sleep", {"seconds": seconds, "marker": str(marker)}))
    await poll(marked(marker, "started"))
    return running


async def test_past_max_concurrency_and_max_queued_callers_are_told_busy_at_once(
        server: Running, tmp_path: Path):
    running = await occupy_the_slot(server, tmp_path, 3)  # test-sleep: max_concurrency 1, max_queued 1

    async def call() -> tuple[object, bool]:
        try:
            return await server.gateway.client.invoke("test-sleep", {"seconds": 0}), running.done()
        except Busy as busy:
            return busy, running.done()

    outcomes = await asyncio.gather(*(call() for _ in range(4)))
    busy = [(o, done) for o, done in outcomes if isinstance(o, Busy)]
    assert len(busy) == 3, outcomes  # one waits in the queue, the rest are turned away
    assert not any(done for _, done in busy), "busy answers must not wait for the running call"
    assert "test-sleep is busy, retry after" in busy[0][0].message
    assert [o for o, _ in outcomes if not isinstance(o, Busy)] == [{"slept": 0}]
    assert (await running) == {"slept": 3}


async def test_busy_over_rest_is_429_with_retry_after(server: Running, tmp_path: Path):
    running = await occupy_the_slot(server, tmp_path, 2)
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as http:
        responses = await asyncio.gather(*(http.post("/invoke/test-sleep", json={"seconds": 0})
                                           for _ in range(2)))
    assert sorted(r.status_code for r in responses) == [200, 429]
    rejected = next(r for r in responses if r.status_code == 429)
    assert int(rejected.headers["retry-after"]) >= 1
    assert rejected.json()["error"]["type"] == "busy"
    await running


async def test_an_mcp_cancel_reaches_the_replica(server: Running, tmp_path: Path):
    marker = tmp_path / "cancelled"
    async with http_session(server.url, server.auth) as session:
        call = asyncio.create_task(session.call_tool("test-sleep", {"seconds": 60, "marker": str(marker)}))
        await poll(marked(marker, "started"))
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    assert await poll(marked(marker, "cancelled"), timeout_s=20)
    assert (await server.gateway.client.invoke("test-sleep", {"seconds": 0})) == {"slept": 0}


async def test_a_rest_client_that_goes_away_cancels_the_replica(server: Running, tmp_path: Path):
    marker = tmp_path / "gone"
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/invoke/test-sleep", json={"seconds": 60, "marker": str(marker)}, timeout=1.0)
    assert await poll(marked(marker, "cancelled"), timeout_s=20)


async def test_timeout_s_ends_the_call_and_the_replica_work(server: Running, tmp_path: Path):
    marker = tmp_path / "timed-out"
    with pytest.raises(TimedOut, match=r"test-timeout timed out after 0\.5 s"):
        await server.gateway.client.invoke("test-timeout", {"seconds": 30, "marker": str(marker)})
    assert await poll(marked(marker, "cancelled"), timeout_s=20)


async def test_asking_for_gpus_the_cluster_lacks_fails_fast(server: Running):
    assert ray.cluster_resources().get("GPU", 0) == 0
    spec = AlgorithmSpec(name="needs-gpu", kind="local", target="tests.algorithms:Sleep", num_gpus=0.5)
    with pytest.raises(NotConfigured, match=r"needs-gpu: num_gpus 0\.5 asked for, but the Ray cluster has 0 GPU"):
        check_resources(Registry([Entry(spec, Sleep)]))


async def test_a_registry_asking_for_more_cpus_than_the_cluster_has_fails_fast(server: Running):
    cpus = ray.cluster_resources()["CPU"]
    spec = AlgorithmSpec(name="greedy", kind="local", target="tests.algorithms:Sleep", num_cpus=cpus / 2,
                         num_workers=3, max_concurrency=3)
    with pytest.raises(NotConfigured, match=r"the registry asks for .* CPUs in all"):
        check_resources(Registry([Entry(spec, Sleep)]))
