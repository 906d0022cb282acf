"""The service log, the debug log and ``/metrics``: first against gateways whose runtime is not
started (no Ray: their calls end "starting" or "invalid"), then end to end against the session's
gateway, through a real MCP client and REST."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from engines.settings import Settings
from mcp_server.app import Gateway, build_gateway
from mcp_server.listen import listening_socket
from tests.conftest import ROOT, Running
from tests.mcp_clients import http_session
from tests.polling import poll

TOKEN = "observe-token-41c7"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MARKER = "sk-marker-secret-0d9b7"  # an argument that must never reach a log


@dataclass
class Served:
    gateway: Gateway
    http: httpx.AsyncClient
    logs: Path


@asynccontextmanager
async def unstarted(data_dir: Path, **settings: Any) -> AsyncIterator[Served]:
    """A gateway over real HTTP whose lifespan (and so Ray) never starts: REST and /metrics answer."""
    gateway = build_gateway(Settings(_env_file=None, data_dir=data_dir, start_wait_s=0, mcp_auth_token=TOKEN,
                                     log_format="json", **settings))
    with listening_socket("127.0.0.1", 0) as sock:
        server = uvicorn.Server(uvicorn.Config(gateway.http_app(), lifespan="off", log_level="warning"))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        await poll(lambda: server.started, what="the gateway listening")
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                yield Served(gateway, http, data_dir / "logs")
        finally:
            server.should_exit = True
            await serving
            gateway.observability.close()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The sample ``name`` with exactly ``labels`` in a scrape, None when it is not there."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


async def scrape(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    answer = await http.get("/metrics", headers=headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return answer.text


def log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def every_log_text(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.iterdir() if p.is_file())


async def test_metrics_need_the_token_and_are_prometheus_text(tmp_path: Path):
    async with unstarted(tmp_path) as served:
        refused = await served.http.get("/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
        text = await scrape(served.http, AUTH)
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["algo_mcp_calls"] == "counter" and families["algo_mcp_call_duration_seconds"] == "histogram"
    assert families["algo_mcp_ready"] == "gauge" and "process_resident_memory_bytes" in families
    assert metric(text, "algo_mcp_ready", part="local-echo") == 0  # nothing started


async def test_rest_calls_are_counted_and_logged_by_outcome_never_with_their_arguments(tmp_path: Path):
    async with unstarted(tmp_path) as served:
        http = served.http
        starting = await http.post("/invoke/local-echo", json={"text": MARKER}, headers=AUTH)
        invalid = await http.post("/invoke/local-echo", json={"text": MARKER, "api_key": MARKER}, headers=AUTH)
        queued = await http.post("/tasks/local-echo", json={"text": MARKER},
                                 headers={**AUTH, "X-Request-ID": "trace-7"})
        assert (starting.status_code, invalid.status_code, queued.status_code) == (503, 422, 503)
        assert queued.headers["x-request-id"] == "trace-7" and len(starting.headers["x-request-id"]) == 16
        text = await scrape(http, AUTH)
        service = served.gateway.observability.service.path
        lines = await poll(lambda: len(log_lines(service)) >= 4 and log_lines(service), what="four service lines")
    labels = {"algorithm": "local-echo", "transport": "rest"}
    assert metric(text, "algo_mcp_calls_total", **labels, outcome="starting") == 2
    assert metric(text, "algo_mcp_calls_total", **labels, outcome="invalid") == 1
    assert metric(text, "algo_mcp_call_duration_seconds_count", **labels) == 3
    assert metric(text, "algo_mcp_calls_in_flight", algorithm="local-echo") == 0
    assert metric(text, "algo_mcp_busy_refusals_total", algorithm="local-echo") is None  # none refused as busy
    task = next(json.loads(line) for line in lines if '"trace-7"' in line)
    assert {k: task[k] for k in ("transport", "target", "algorithm", "status", "outcome")} == {
        "transport": "rest", "target": "POST /tasks/local-echo", "algorithm": "local-echo", "status": 503,
        "outcome": "starting"}
    assert task["caller"].startswith("127.0.0.1:") and task["duration_ms"] >= 0
    assert [json.loads(line)["outcome"] for line in lines[:3]] == ["starting", "invalid", "starting"]
    assert MARKER not in every_log_text(served.logs)


async def test_gateways_in_one_process_keep_their_own_metrics_and_logs(tmp_path: Path):
    async with unstarted(tmp_path / "one") as one, unstarted(tmp_path / "two", service_name="other") as two:
        await one.http.post("/invoke/local-echo", json={"text": "hi"}, headers=AUTH)
        first, second = await scrape(one.http, AUTH), await scrape(two.http, AUTH)
    labels = {"algorithm": "local-echo", "transport": "rest", "outcome": "starting"}
    assert metric(first, "algo_mcp_calls_total", **labels) == 1
    assert metric(second, "algo_mcp_calls_total", **labels) is None
    assert (tmp_path / "one" / "logs" / "algo-mcp.log").exists()
    assert [json.loads(line)["target"] for line in log_lines(tmp_path / "two" / "logs" / "other.log")] == [
        "GET /metrics"]


async def test_the_debug_log_gets_a_line_every_interval(tmp_path: Path):
    gateway = build_gateway(Settings(_env_file=None, data_dir=tmp_path, log_format="json", debug_log_interval_s=0.05))
    debug = gateway.observability.debug.path
    async with gateway.observability.running():
        await poll(lambda: len(log_lines(debug)) >= 2, what="two debug lines")
    line = json.loads(log_lines(debug)[0])
    assert line["status"] == "starting" and line["replicas"]["local-echo"] == "waiting"
    assert line["in_flight"] == {} and line["tasks"] is None and line["ray"] is None
    assert line["rss_mb"] > 0 and line["cpu_percent"] >= 0


async def test_a_real_call_over_mcp_and_rest_is_counted_and_logged(server: Running):
    service = server.gateway.observability.service.path
    mcp, rest = ({"algorithm": "local-echo", "transport": t, "outcome": "ok"} for t in ("mcp", "rest"))
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        before = await scrape(http, server.auth)
        mcp_lines = sum('target="tools/call local-echo"' in line for line in log_lines(service))
        async with http_session(server.url, server.auth) as session:
            called = await session.call_tool("local-echo", {"text": MARKER})
        assert not called.is_error
        request_id = uuid.uuid4().hex
        invoked = await http.post("/invoke/local-echo", json={"text": MARKER},
                                  headers={**server.auth, "X-Request-ID": request_id})
        assert invoked.status_code == 200
        submitted = await http.post("/tasks/test-sleep-async", json={"seconds": 0.1}, headers=server.auth)
        assert submitted.status_code == 202
        after = await scrape(http, server.auth)
    assert metric(after, "algo_mcp_calls_total", **mcp) == (metric(before, "algo_mcp_calls_total", **mcp) or 0) + 1
    assert metric(after, "algo_mcp_calls_total", **rest) == (metric(before, "algo_mcp_calls_total", **rest) or 0) + 1
    assert metric(after, "algo_mcp_ready", part="local-echo") == 1
    assert metric(after, "algo_mcp_task_queue_depth") is not None
    assert {metric(after, "algo_mcp_tasks", status=s) is not None for s in ("queued", "running")} == {True}
    assert {metric(after, "algo_mcp_actors", state=s) is not None for s in ("active", "passivated")} == {True}

    async def ended() -> bool:  # the task, once it ends, in the counters the task store keeps in Redis
        ended_now = await scrape(http, server.auth)
        return (metric(ended_now, "algo_mcp_tasks_ended_total", status="completed") or 0) > (
            metric(before, "algo_mcp_tasks_ended_total", status="completed") or 0) and (
            metric(ended_now, "algo_mcp_task_duration_seconds_count", algorithm="test-sleep-async") or 0) > (
            metric(before, "algo_mcp_task_duration_seconds_count", algorithm="test-sleep-async") or 0)

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        await poll(ended, timeout_s=30, interval_s=0.2, what="the task counted as ended")

    def logged() -> list[str]:
        lines = log_lines(service)
        mine = [line for line in lines if f"request_id={request_id} " in line]
        calls = [line for line in lines if 'target="tools/call local-echo"' in line]
        return mine if mine and len(calls) > mcp_lines else []

    rest_line = (await poll(logged, what="both calls in the service log"))[0]
    assert 'transport=rest target="POST /invoke/local-echo" algorithm=local-echo status=200 outcome=ok' in rest_line
    mcp_line = [line for line in log_lines(service) if 'target="tools/call local-echo"' in line][-1]
    assert "transport=mcp" in mcp_line and "algorithm=local-echo status=ok outcome=ok" in mcp_line
    assert "(streamable-http)" in mcp_line
    assert MARKER not in every_log_text(service.parent)


async def test_calls_waiting_for_a_replica_slot_are_shown_as_queued(server: Running):
    """test-live takes two calls at a time: the other four wait in Serve's router queue meanwhile."""
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        calls = [asyncio.ensure_future(http.post("/invoke/test-live", json={"seconds": 1.5})) for _ in range(6)]
        try:
            async def waiting() -> bool:
                return metric(await scrape(http, server.auth), "algo_mcp_calls_queued", algorithm="test-live") == 4

            await poll(waiting, timeout_s=10, interval_s=0.05, what="four calls shown as queued")
        finally:
            answers = await asyncio.gather(*calls)
        assert [a.status_code for a in answers] == [200] * 6
        assert metric(await scrape(http, server.auth), "algo_mcp_calls_queued", algorithm="test-live") == 0


async def test_every_metric_the_dashboard_reads_is_served(server: Running):
    """deploy/grafana/algo-mcp.json queries only metrics a gateway with algorithms, tasks, actors and
    pipelines serves (a renamed metric would leave a panel empty without a word)."""
    dashboard = (ROOT / "deploy" / "grafana" / "algo-mcp.json").read_text()
    read = {re.sub(r"_(bucket|sum|count|total)$", "", name) for name in re.findall(r"algo_mcp_\w+", dashboard)}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        served = {family.name for family in text_string_to_metric_families(await scrape(http, server.auth))}
    assert read and read <= served, sorted(read - served)

