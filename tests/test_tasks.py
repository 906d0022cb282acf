"""Long jobs: task references at once, records in Redis, waits, cancels, callbacks, redelivery."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
from asyncio.subprocess import DEVNULL
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from ray import serve

from engines.tasks.worker import worker_app_name
from storage import TaskStatus
from tests.conftest import CALLBACK_SECRET, ROOT, Running, free_port, poll
from tests.fake_apis import serving
from tests.mcp_clients import http_session
from tests.test_limits import marked


async def test_an_async_tool_answers_at_once_with_a_task_reference(server: Running):
    async with http_session(server.url, server.auth) as session:
        ref = (await session.call_tool("test-sleep-async", {"seconds": 1})).structured_content
        assert ref["status"] == "queued" and ref["resource"] == f"task://{ref['task_id']}"
        assert ref["poll_after_s"] > 0
        done = (await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 30})).structured_content
        assert done["status"] == "completed" and done["result"] == {"slept": 1}
        assert done["attempts"] == 1 and done["started_at"] >= done["created_at"]
        resource = await session.read_resource(f"task://{ref['task_id']}")
        assert json.loads(resource.contents[0].text)["status"] == "completed"
        listed = (await session.call_tool("list_tasks", {"algorithm": "test-sleep-async"})).structured_content
        assert ref["task_id"] in [t["task_id"] for t in listed["tasks"]]


async def test_wait_task_returns_the_running_record_when_time_is_up(server: Running):
    async with http_session(server.url, server.auth) as session:
        ref = (await session.call_tool("test-sleep-async", {"seconds": 5})).structured_content
        record = (await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 0.5}))
        assert record.structured_content["status"] in ("queued", "running")
        too_long = await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 120})
        assert too_long.is_error and "timeout_s" in too_long.content[0].text


async def test_auto_mode_answers_inline_when_quick_and_with_a_reference_when_not(server: Running):
    async with http_session(server.url, server.auth) as session:
        quick = await session.call_tool("test-sleep-auto", {"seconds": 0.1})
        slow = await session.call_tool("test-sleep-auto", {"seconds": 4})
    assert quick.structured_content == {"slept": 0.1}
    assert slow.structured_content["status"] in ("queued", "running") and "task_id" in slow.structured_content


async def test_unknown_tasks_are_clear_errors(server: Running):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool("get_task", {"task_id": "ab" * 16})
    assert result.is_error and "no task 'abab" in result.content[0].text
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        assert (await http.get(f"/tasks/{'cd' * 16}")).status_code == 404
        for bad_id, rule in (("NOT-HEX", "must match ^[0-9a-f]+$"), ("a" * 65, "at most 64 characters (got 65)")):
            for method in (http.get, http.delete):
                answer = await method(f"/tasks/{bad_id}")
                assert answer.status_code == 422, (method, bad_id)
                assert answer.json()["error"]["problems"][0].startswith(f"task_id: {rule}")


async def test_rest_submit_read_and_cancel(server: Running, tmp_path: Path):
    marker = tmp_path / "rest-task"
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        submitted = await http.post("/tasks/test-sleep-async", json={"seconds": 60, "marker": str(marker)})
        assert submitted.status_code == 202 and submitted.json()["status"] == "queued"
        task_id = submitted.json()["task_id"]
        assert set(submitted.json()) == {"task_id", "status"}  # the seed's answer
        await poll(marked(marker, "started"))
        assert (await http.get(f"/tasks/{task_id}")).json()["status"] == "running"
        cancelled = await http.delete(f"/tasks/{task_id}")
        assert cancelled.json()["status"] == "cancelled"
        bad = await http.post("/tasks/test-sleep-async", json={"seconds": -1})
        assert bad.status_code == 422 and bad.json()["error"]["problems"] == ["seconds: must be >= 0 (got -1)"]
    assert await poll(marked(marker, "cancelled"), timeout_s=20)  # the replica's work stopped


async def test_cancelling_a_queued_task_means_it_never_runs(server: Running, tmp_path: Path):
    queue = server.gateway.runtime.tasks
    blockers = [await queue.submit("test-sleep", {"seconds": 3}) for _ in range(3)]
    marker = tmp_path / "never"
    queued = await queue.submit("test-sleep", {"seconds": 0, "marker": str(marker)})
    assert (await queue.cancel(queued.task_id)).status is TaskStatus.CANCELLED
    for blocker in blockers:
        assert (await queue.wait(blocker.task_id, 60)).status is TaskStatus.COMPLETED
    assert not marker.exists()


@pytest.fixture
def callback_receiver() -> Iterator[tuple[str, list[tuple[dict, str, bytes]]]]:
    received: list[tuple[dict, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers.get("X-Algo-MCP-Signature", ""), body))
            self.send_response(204)
            self.end_headers()

    with serving(Handler) as url:
        yield f"{url}/hook", received


async def test_callbacks_arrive_signed_with_the_final_record(server: Running, callback_receiver):
    url, received = callback_receiver
    record = await server.gateway.runtime.tasks.submit("test-sleep-async", {"seconds": 0.2}, callback_url=url)
    await poll(lambda: received, timeout_s=30)
    body, signature, raw = received[0]
    assert body["task_id"] == record.task_id and body["status"] == "completed"
    assert signature == "sha256=" + hmac.new(CALLBACK_SECRET.encode(), raw, hashlib.sha256).hexdigest()


async def test_callback_urls_must_be_public(server: Running):
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        response = await http.post("/tasks/test-sleep-async", json={"seconds": 0},
                                   params={"callback_url": "http://169.254.169.254/latest"})
    assert response.status_code == 422
    assert response.json()["error"]["problems"] == ["callback_url: address 169.254.169.254 is not public"]


async def test_many_concurrent_submissions_all_end_and_run_once(server: Running):
    queue = server.gateway.runtime.tasks
    records = await asyncio.gather(*(queue.submit("test-sleep-async", {"seconds": 0}) for _ in range(200)))
    finals = await asyncio.gather(*(queue.wait(r.task_id, 120) for r in records))
    assert {f.status for f in finals} == {TaskStatus.COMPLETED}
    assert {f.attempts for f in finals} == {1}


async def test_a_killed_worker_is_replaced_and_its_task_redelivered(server: Running, tmp_path: Path):
    marker = tmp_path / "redelivered"
    record = await server.gateway.runtime.tasks.submit("test-sleep-async", {"seconds": 2, "marker": str(marker)})
    await poll(marked(marker, "started"))
    name = worker_app_name(server.gateway.runtime.tasks.config)
    worker = serve.get_deployment_handle(name, app_name=name)
    status = await worker.status.remote()
    assert record.task_id in status["running"]
    os.kill(status["pid"], signal.SIGKILL)
    final = await server.gateway.runtime.tasks.wait(record.task_id, 120)
    assert final.status is TaskStatus.COMPLETED and final.result == {"slept": 2}
    assert final.attempts == 2


async def test_a_task_past_its_timeout_fails_with_timed_out(server: Running):
    record = await server.gateway.runtime.tasks.submit("test-timeout", {"seconds": 30})
    final = await server.gateway.runtime.tasks.wait(record.task_id, 60)
    assert final.status is TaskStatus.FAILED
    assert final.error == {"type": "timed_out", "message": "test-timeout timed out after 0.5 s"}


async def test_healthz_lists_the_live_gateway_and_task_worker(server: Running):
    async with httpx.AsyncClient(base_url=server.url) as http:
        body = (await http.get("/healthz")).json()
    kinds = {w["kind"] for w in body["workers"]}
    assert {"gateway", "task-worker"} <= kinds
    assert any(name.startswith("algo-mcp-task-worker-") and a["status"] == "RUNNING"
               for name, a in body["algorithms"].items())


async def test_an_unreachable_task_store_is_a_retry_later_error_naming_it(tmp_path: Path):
    """Redis down is the caller's "retry shortly" (503 over REST, with Retry-After), not an internal
    error or a hang; the gateway still starts and says what is wrong."""
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    port = free_port()
    env = {**os.environ, "REDIS_URL": dead, "RAY_ADDRESS": f"127.0.0.1:{free_port()}", "DATA_DIR": str(tmp_path),
           "SERVICE_PORT": str(port), "FASTMCP_CHECK_FOR_UPDATES": "off"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "mcp_server", "serve", "--transport", "http",
                                                cwd=ROOT, env=env, stdout=DEVNULL, stderr=DEVNULL)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            async def answered() -> httpx.Response | None:
                with contextlib.suppress(httpx.TransportError):
                    return await http.post("/tasks/local-echo", json={"text": "hi"})
                return None

            answer = await poll(answered, timeout_s=60, what="the gateway answering")
            read = await http.get("/tasks/ab12")
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    for response in (answer, read):
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert response.json()["error"] == {"type": "unavailable",
                                            "message": "the task store (Redis) is not reachable; retry shortly"}


async def test_a_task_waiting_on_a_busy_algorithm_counts_the_wait_against_its_timeout(server: Running):
    """test-busy runs one call at a time and lets one more wait (per caller), within 4 s. Of three 1.5 s
    tasks the worker starts together, one runs, one waits its turn (done by 3 s), and the third is told
    "busy": it waits too (busy is backpressure, not failure), and that wait is part of its 4 s."""
    tasks = server.gateway.runtime.tasks
    records = [await tasks.submit("test-busy", {"seconds": 1.5}) for _ in range(3)]
    finals = [await tasks.wait(r.task_id, 60) for r in records]
    assert sorted(f.status.value for f in finals) == ["completed", "completed", "failed"], finals
    failed = next(f for f in finals if f.status is TaskStatus.FAILED)
    assert failed.error == {"type": "timed_out", "message": "test-busy timed out after 4 s"}


async def test_task_tools_answer_errors_with_their_type_like_the_algorithm_tools(server: Running):
    async with http_session(server.url, server.auth) as session:
        missing = await session.call_tool("get_task", {"task_id": "ab12"})
        cancelled = await session.call_tool("cancel_task", {"task_id": "ab12"})
        listed = await session.call_tool("list_tasks", {"algorithm": "test-sleep-async", "limit": 1})
    for answer in (missing, cancelled):
        assert answer.is_error and answer.content[0].text == "no task 'ab12' (it may have expired)"
        assert answer.structured_content == {"error": {"type": "unknown_task",
                                                       "message": "no task 'ab12' (it may have expired)"}}
    assert not listed.is_error and len(listed.structured_content["tasks"]) == 1
