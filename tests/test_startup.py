"""Start-up in the background: a gateway answers at once, a call arrives before its algorithm runs
and waits for it or is told it is starting, a failed deployment takes down only its own tool, and
gateways on one data folder share one local cluster (a warm start) that stops after the last."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import sys
from pathlib import Path

import httpx
import yaml
from ray import serve

from engines import local_cluster
from tests.conftest import ROOT, START_DEADLINE_S, Running, free_port
from tests.mcp_clients import http_session
from tests.polling import poll
from tests.processes import clean_up, marked, new_mark, redis_running
from tests.stdio_raw import RawStdio

ECHO = next(e for e in yaml.safe_load((ROOT / "algorithms.yaml").read_text()) if e["name"] == "local-echo")
TEST = {"kind": "local", "num_cpus": 0.01}


def write_registry(path: Path, *entries: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(list(entries)))
    return path


async def test_a_call_before_its_algorithm_runs_waits_for_it_or_is_told_it_is_starting(
        server: Running, tmp_path: Path):
    """Joined to the session's cluster; two slow models (known from an earlier start to take 8 s and
    300 s), one that cannot be placed, one that cannot load, and an echo that already runs."""
    names = ["test-slow-start", "test-quick-enough", "test-broken-setup", "needs-a-gpu", "test-output"]
    registry = write_registry(
        tmp_path / "algorithms.yaml", ECHO,
        {**TEST, "name": names[0], "target": "tests.algorithms:SlowStart"},
        {**TEST, "name": names[1], "target": "tests.algorithms:SlowStart"},
        {**TEST, "name": names[2], "target": "tests.algorithms:BrokenSetup"},
        {**TEST, "name": names[3], "target": "tests.algorithms:Crash", "num_gpus": 1},
        {**TEST, "name": names[4], "target": "tests.algorithms:MakePng"})
    data = tmp_path / "data"
    data.mkdir()
    (data / "startup-times.json").write_text(json.dumps({names[0]: 300, names[1]: 8}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**server.env, "ALGO_MCP_REGISTRY": str(registry), "DATA_DIR": str(data), "START_WAIT_S": "45"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcp_server", "serve", "--transport", "http", "--port", str(port), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=url, headers=server.auth, timeout=60) as http:
            async def health() -> httpx.Response | None:
                with contextlib.suppress(httpx.TransportError):
                    return await http.get("/healthz")
                return None

            early = await poll(health, what="the gateway listening")
            assert early.status_code == 503 and early.json()["status"] == "starting"
            refused = await http.post(f"/invoke/{names[0]}", json={"text": "too soon"})
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
            error = refused.json()["error"]
            assert error["type"] == "starting" and error["message"].startswith(f"{names[0]} is starting (about ")
            assert error["message"].endswith("; retry shortly")

            messages: list[str] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                messages.append(message or "")

            async with http_session(url, server.auth) as session:
                waited = await session.call_tool(names[1], {"text": "worth the wait"}, progress_callback=on_progress)
                assert not waited.is_error and waited.structured_content == {"text": "worth the wait"}
                assert messages and all(m.startswith("starting: ") for m in messages)

                settled = await poll(lambda: _settled(http), timeout_s=START_DEADLINE_S, interval_s=0.5,
                                     what="start-up over")
                assert settled.status_code == 503 and settled.json()["status"] == "degraded"
                gpu = await session.call_tool(names[3], {"crash": False})
                broken = await session.call_tool(names[2], {"crash": False})
                echo = await session.call_tool("local-echo", {"text": "still here"})
                made = (await session.call_tool(names[4], {"size": 8})).structured_content["image"]
            assert made["url"].startswith(f"{url}/objects/outputs/sync-")  # --port, not SERVICE_PORT's 8000
            assert (await http.get(made["url"])).content.startswith(b"\x89PNG")  # signed: any client may follow
        assert gpu.is_error and gpu.content[0].text == (
            f"{names[3]}: num_gpus 1 asked for, but the Ray cluster has 0 GPU(s); set num_gpus: 0 to run on "
            "CPU or add GPU nodes")
        assert broken.is_error and broken.content[0].text == (
            f"{names[2]}: deployment failed: RuntimeError: weights not found at /models/broken.bin (The "
            "deployment failed to start 3 times in a row; the traceback is in the Serve logs)")
        assert broken.structured_content["error"]["type"] == "unavailable"
        assert not echo.is_error and echo.structured_content == {"text": "still here"}
        algorithms = settled.json()["algorithms"]
        assert algorithms[names[3]]["status"] == "FAILED" and algorithms["local-echo"]["status"] == "RUNNING"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        for name in (*names[:3], names[4]):
            await asyncio.to_thread(serve.delete, name)


async def _settled(http: httpx.AsyncClient) -> httpx.Response | None:
    answer = await http.get("/healthz")
    return answer if answer.json()["status"] != "starting" else None


def cluster_processes(env: dict[str, str]) -> list[str]:
    """The local clusters a test's gateways started: keepers and their Ray."""
    return [c for c in marked(env).values() if any(n in c for n in ("local_cluster", "raylet"))]


async def test_gateways_on_one_data_folder_share_one_local_cluster_that_stops_after_the_last(tmp_path: Path):
    """Two desktop windows (two stdio gateways, no RAY_ADDRESS or REDIS_URL): the first starts the
    cluster and answers at once, the second joins it, links to outputs open over stdio, every line
    on stdout is protocol, and the cluster stops once both have gone."""
    data = tmp_path / "data"
    registry = write_registry(tmp_path / "algorithms.yaml", ECHO,
                              {**TEST, "name": "test-output", "target": "tests.algorithms:MakePng"},
                              {**TEST, "name": "needs-a-gpu", "target": "tests.algorithms:Crash", "num_gpus": 1})
    first_mark, second_mark = new_mark(), new_mark()
    env = {"ALGO_MCP_REGISTRY": str(registry), "DATA_DIR": str(data), "LOCAL_CLUSTER_LINGER_S": "0",
           "START_WAIT_S": "55", "PYTHONPATH": str(ROOT), "FASTMCP_CHECK_FOR_UPDATES": "off"}
    first = await RawStdio.spawn({**env, **first_mark}, tmp_path / "first.err")
    second = None
    try:
        assert (await first.initialize())["serverInfo"]["name"] == "algo-mcp"
        tools = {t["name"] for t in (await first.request("tools/list"))["tools"]}
        assert {"local-echo", "test-output", "wait_task"} <= tools
        cold = await first.call("local-echo", {"text": "cold"}, progress_token="cold-start")
        assert cold["structuredContent"] == {"text": "cold"}
        assert first.progress("cold-start") and all(m.startswith("starting: ") for m in first.progress("cold-start"))
        keeper = local_cluster.current(data)
        assert keeper is not None and keeper.ray_address and keeper.redis_url
        started = " ".join(cluster_processes(first_mark))
        assert "local_cluster" in started and "raylet" in started and redis_running(data)

        second = await RawStdio.spawn({**env, **second_mark}, tmp_path / "second.err")
        await second.initialize()
        warm = await second.call("local-echo", {"text": "warm"})
        assert warm["structuredContent"] == {"text": "warm"}
        assert local_cluster.current(data).pid == keeper.pid and cluster_processes(second_mark) == []

        failed = await second.call("needs-a-gpu", {"crash": False})  # a failure is an answer, not a stray line
        assert failed["isError"] and failed["content"][0]["text"].startswith("needs-a-gpu: num_gpus 1 asked for")
        made = (await second.call("test-output", {"size": 8}))["structuredContent"]["image"]
        assert made["url"].startswith("http://127.0.0.1:") and "/objects/outputs/sync-" in made["url"]
        async with httpx.AsyncClient() as http:
            fetched = await http.get(made["url"])
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert fetched.content.startswith(b"\x89PNG") and len(fetched.content) == made["bytes"]
        read = await second.request("resources/read", {"uri": f"object://{made['key']}"})  # over stdio itself
        assert base64.b64decode(read["contents"][0]["blob"]) == fetched.content

        assert await first.close() == 0
        assert (await second.call("local-echo", {"text": "alone"}))["structuredContent"] == {"text": "alone"}
        assert await second.close() == 0
        await poll(lambda: local_cluster.current(data) is None and not marked(first_mark) and not redis_running(data),
                   timeout_s=120, interval_s=0.5, what="the local cluster stopped after the last gateway")
    finally:
        for gateway in (first, second):
            if gateway is not None and gateway.proc.returncode is None:
                gateway.proc.kill()
        clean_up(first_mark, data)
