"""Limits changed while algorithms run (``PATCH /admin/algorithms/{name}``), and Serve autoscaling."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from ray import serve

from engines.algorithms.registry import Registry
from engines.limits import Limits
from engines.readiness import Readiness
from engines.serving.deploy import AlgorithmApp
from storage import redis_pool
from storage.limits import LimitStore
from tests.conftest import Running
from tests.polling import poll


@pytest.fixture
async def rest(server: Running):
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=120) as http:
        yield http


async def _calls(rest: httpx.AsyncClient, name: str, n: int, seconds: float) -> list[dict]:
    answers = await asyncio.gather(*(rest.post(f"/invoke/{name}", json={"seconds": seconds}) for _ in range(n)))
    assert [a.status_code for a in answers] == [200] * n, [a.text for a in answers if a.status_code != 200]
    return [a.json()["result"] for a in answers]


def _replicas(name: str) -> dict[str, int]:
    deployment = serve.status().applications[name].deployments[name]
    return dict(deployment.replica_states)


async def test_limits_change_on_the_running_replicas_with_calls_in_flight(server: Running,
                                                                          rest: httpx.AsyncClient):
    before = await _calls(rest, "test-live", 8, 0.2)
    pid = {r["pid"] for r in before}
    assert len(pid) == 1 and max(r["batch"] for r in before) <= 2  # the file's max_concurrency 2, batches of 2
    try:
        in_flight = asyncio.ensure_future(_calls(rest, "test-live", 40, 0.3))  # every one must be answered
        changed = await rest.patch("/admin/algorithms/test-live",
                                   json={"max_concurrency": 16, "max_batch_size": 8, "max_queued": 512})
        assert changed.status_code == 200, changed.text
        during = await in_flight
        body = changed.json()
        assert body["current"]["max_concurrency"] == 16 and body["current"]["batch"]["max_batch_size"] == 8
        assert body["declared"]["max_concurrency"] == 2 and body["changed"] == ["batch", "max_concurrency",
                                                                                 "max_queued"]
        assert body["log"][0]["by"] == "127.0.0.1" and body["log"][0]["change"]["max_batch_size"] == 8
        after = await _calls(rest, "test-live", 16, 0.3)
        assert {r["pid"] for r in during + after} == pid  # the same replica process: nothing restarted
        assert max(r["batch"] for r in after) > 2  # both the concurrency and the batch size grew

        # a gateway starting now deploys the same: it reads the change before deploying, so it reuses the
        # running deployment instead of reverting it
        registry = Registry.load(server.gateway.settings.algo_mcp_registry)
        fresh = Limits(server.gateway.settings, registry, Readiness(None))
        redis = redis_pool(server.gateway.settings.redis_url)
        try:
            fresh.open(LimitStore(redis, prefix=server.gateway.settings.task_key_prefix))
            await fresh.load()
        finally:
            await redis.aclose()
        assert registry.get("test-live").spec.max_concurrency == 16
        running = await server.gateway.runtime._client.handle("test-live").fingerprint.remote()
        assert AlgorithmApp(registry.get("test-live"), server.gateway.settings).fingerprint() == running
    finally:
        reset = await rest.delete("/admin/algorithms/test-live/limits")
    assert reset.status_code == 200 and reset.json()["changed"] == [], reset.text
    assert max(r["batch"] for r in await _calls(rest, "test-live", 8, 0.2)) <= 2


async def test_replicas_are_added_and_removed_while_it_runs(server: Running, rest: httpx.AsyncClient):
    try:
        changed = await rest.patch("/admin/algorithms/test-live", json={"num_workers": 2})
        assert changed.status_code == 200, changed.text
        assert _replicas("test-live") == {"RUNNING": 2}
        pids = {r["pid"] for r in await _calls(rest, "test-live", 16, 0.2)}
        assert len(pids) == 2
    finally:
        reset = await rest.delete("/admin/algorithms/test-live/limits")
    assert reset.status_code == 200, reset.text
    await poll(lambda: _replicas("test-live") == {"RUNNING": 1}, timeout_s=60, what="back to one replica")


@pytest.mark.parametrize(("name", "body", "status", "message"), [
    ("test-live", {}, 422, "body: name at least one of max_concurrency, num_workers"),
    ("test-live", {"max_concurrency": 0}, 422, "max_concurrency: must be >= 1 (got 0)"),
    ("test-live", {"max_concurrency": "many"}, 422, "max_concurrency: input should be a valid integer"),
    ("test-live", {"num_workers": 4, "max_concurrency": 3}, 422, "max_concurrency: must be >= num_workers (4)"),
    ("test-live", {"timeout_s": 5}, 422, "timeout_s: unknown field"),
    ("test-sleep", {"batch_wait_timeout_s": 0.1}, 422, "max_batch_size: required, since test-sleep does not batch"),
    ("test-sleep", {"num_workers": 256, "max_concurrency": 256}, 422,
     "num_workers: 255 more replica(s) need 12.75 CPU(s), but the Ray"),
    ("test-nope", {"num_workers": 2}, 404, "test-nope"),
])
async def test_bad_changes_are_refused_naming_the_field_and_nothing_changes(
        rest: httpx.AsyncClient, name: str, body: dict, status: int, message: str):
    answer = await rest.patch(f"/admin/algorithms/{name}", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]["message"]
    if status == 422 and name == "test-live":
        assert (await rest.get(f"/admin/algorithms/{name}")).json()["changed"] == []


async def test_changing_limits_needs_the_token(server: Running):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anonymous:
        answer = await anonymous.patch("/admin/algorithms/test-live", json={"max_queued": 9})
    assert answer.status_code == 401


async def test_serve_autoscaling_adds_replicas_under_load_and_removes_them_after(rest: httpx.AsyncClient):
    assert _replicas("test-autoscaled") == {"RUNNING": 1}
    load = asyncio.ensure_future(_calls(rest, "test-autoscaled", 60, 1.0))  # 8 at a time, 1 s each
    try:
        await poll(lambda: _replicas("test-autoscaled").get("RUNNING", 0) >= 2, timeout_s=60,
                   what="a replica added under load")
        pids = Counter(r["pid"] for r in await load)
        assert len(pids) >= 2
    finally:
        load.cancel()
    await poll(lambda: _replicas("test-autoscaled") == {"RUNNING": 1}, timeout_s=90, interval_s=0.5,
               what="back to the minimum once the load ended")
