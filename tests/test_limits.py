"""Limits hold: busy answers come at once, cancels reach the replica, timeouts end calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from engines.algorithms.registry import AlgorithmSpec, Entry
from engines.errors import Busy, TimedOut
from engines.serving.deploy import AlgorithmApp, unfit
from engines.settings import Settings
from tests.algorithms import Sleep
from tests.conftest import Running, poll
from tests.mcp_clients import http_session


def marked(path: Path, state: str):
    return lambda: path.exists() and path.read_text() == state


async def occupy_the_slot(server: Running, tmp_path: Path, seconds: float) -> asyncio.Task:
    """Start a test-sleep call and wait until the replica runs it (its only slot)."""
    marker = tmp_path / "running"
    running = asyncio.create_task(
        server.gateway.runtime.calls.invoke("test-sleep", {"seconds": seconds, "marker": str(marker)}))
    await poll(marked(marker, "started"))
    return running


async def test_past_max_concurrency_and_max_queued_callers_are_told_busy_at_once(
        server: Running, tmp_path: Path):
    running = await occupy_the_slot(server, tmp_path, 3)  # test-sleep: max_concurrency 1, max_queued 1

    async def call() -> tuple[object, bool]:
        try:
            return await server.gateway.runtime.calls.invoke("test-sleep", {"seconds": 0}), running.done()
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
    assert (await server.gateway.runtime.calls.invoke("test-sleep", {"seconds": 0})) == {"slept": 0}


async def test_a_rest_client_that_goes_away_cancels_the_replica(server: Running, tmp_path: Path):
    marker = tmp_path / "gone"
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/invoke/test-sleep", json={"seconds": 60, "marker": str(marker)}, timeout=1.0)
    assert await poll(marked(marker, "cancelled"), timeout_s=20)


async def test_timeout_s_ends_the_call_and_the_replica_work(server: Running, tmp_path: Path):
    marker = tmp_path / "timed-out"
    with pytest.raises(TimedOut, match=r"test-timeout timed out after 0\.5 s"):
        await server.gateway.runtime.calls.invoke("test-timeout", {"seconds": 30, "marker": str(marker)})
    assert await poll(marked(marker, "cancelled"), timeout_s=20)


def app(**spec: object) -> AlgorithmApp:
    entry = Entry(AlgorithmSpec(kind="local", target="tests.algorithms:Sleep", **spec), Sleep, Sleep.Config())
    return AlgorithmApp(entry, Settings(_env_file=None))


def test_asking_for_gpus_the_cluster_lacks_is_refused_with_what_to_change():
    reasons = unfit([app(name="needs-gpu", num_gpus=0.5), app(name="fits")], {"CPU": 2.0})
    assert reasons == {"needs-gpu": "num_gpus 0.5 asked for, but the Ray cluster has 0 GPU(s); set num_gpus: 0 "
                                    "to run on CPU or add GPU nodes"}


def test_applications_past_the_clusters_cpus_are_refused_and_those_before_them_placed():
    apps = [app(name="first", num_cpus=1), app(name="greedy", num_cpus=1, num_workers=3, max_concurrency=3),
            app(name="huge", num_cpus=8)]
    reasons = unfit(apps, {"CPU": 2.0})
    assert set(reasons) == {"greedy", "huge"}
    assert reasons["greedy"].startswith("the applications ask for 4 CPUs in all by this one")
    assert reasons["huge"] == "num_cpus 8 asked for, but the Ray cluster has 2 CPU(s)"
