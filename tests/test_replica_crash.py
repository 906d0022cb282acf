"""A replica that dies mid-call (a segfault, the OOM killer) is reported at once, replaced by
Serve, and costs a task one attempt, not the task."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from storage import TaskStatus
from tests.conftest import Running, poll

pytestmark = pytest.mark.asyncio(loop_scope="session")

CRASH = "test-crash"
WAIT_S = 120  # Serve notices the death and starts a new replica; slow on 2 busy cores


async def replica_pid(server: Running) -> int:
    """The pid of a replica that answers, once Serve has one running again."""

    async def answer() -> int | None:
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=WAIT_S) as http:
            reply = await http.post(f"/invoke/{CRASH}", json={"crash": False})
        return reply.json()["result"]["pid"] if reply.status_code == 200 else None

    return await poll(answer, timeout_s=WAIT_S, interval_s=0.5, what=f"a {CRASH} replica serves")


@pytest.fixture(autouse=True)
async def replaced_after(server: Running) -> AsyncIterator[None]:
    """Each test leaves a healthy replica behind, so later tests (and /healthz) never see the crash."""
    yield
    await replica_pid(server)


async def test_a_sync_call_whose_replica_dies_is_unavailable_then_served_by_a_new_replica(server: Running):
    first = await replica_pid(server)
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=WAIT_S) as http:
        died = await http.post(f"/invoke/{CRASH}", json={"crash": True})
    assert died.status_code == 503
    assert died.json()["error"] == {"type": "unavailable", "message": f"{CRASH}: its replica died during the "
                                    "call (a crash or out of memory; see the replica's log); retry shortly"}
    assert await replica_pid(server) != first


async def test_a_task_whose_replica_dies_runs_again_and_succeeds(server: Running, tmp_path: Path):
    store = await server.gateway.runtime.tasks.store()
    marker = tmp_path / "crashed-once"
    task = await store.submit(CRASH, {"crash": True, "once_marker": str(marker)}, max_attempts=2)
    ended = await store.wait(task.task_id, WAIT_S)
    assert marker.exists()  # the first run did kill its replica
    assert ended is not None and ended.status is TaskStatus.COMPLETED, ended
    assert ended.attempts == 2 and isinstance(ended.result["pid"], int)


async def test_a_task_whose_replica_dies_on_its_last_attempt_fails_as_replica_lost(server: Running):
    store = await server.gateway.runtime.tasks.store()
    task = await store.submit(CRASH, {"crash": True}, max_attempts=1)
    ended = await store.wait(task.task_id, WAIT_S)
    assert ended is not None and ended.status is TaskStatus.FAILED and ended.attempts == 1
    assert ended.error == {"type": "replica_lost", "message": f"{CRASH}: gave up on attempt 1 of 1: its replica "
                           "died during the call (a crash or out of memory; see the replica's log)"}
