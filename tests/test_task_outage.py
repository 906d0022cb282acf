"""Redis unreachable while tasks run: nothing is lost, run twice, or left running.

The outage is real: a task worker of its own, on a queue of its own, reaches
the session's Redis only through a TCP hop the tests cut and restore.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from ray import serve
from redis.asyncio import Redis

from engines.config import StoreConfig
from engines.readiness import Readiness
from engines.serving import stores
from engines.serving.client import AlgorithmClient
from engines.serving.deploy import deploy
from engines.settings import Settings
from engines.tasks.worker import TaskWorkerApp, TaskWorkerConfig
from storage import TaskRecord, TaskStatus, TaskStore, redis_pool
from tests.conftest import Running, poll
from tests.tcp_proxy import TcpProxy
from tests.test_limits import marked


@dataclass
class ProxiedWorker:
    proxy: TcpProxy
    store: TaskStore  # straight to Redis, as a gateway that is not cut off
    redis: Redis

    async def ended(self, task_id: str) -> TaskRecord | None:
        record = await self.store.get(task_id)
        return record if record is not None and record.status.terminal else None


@pytest.fixture(scope="module")
async def worker(server: Running, settings: Settings) -> AsyncIterator[ProxiedWorker]:
    assert settings.redis_url is not None
    target = urlsplit(settings.redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    queue = StoreConfig(f"redis://127.0.0.1:{proxy.port}{target.path}", f"outage-{uuid4().hex[:8]}",
                        server.gateway.runtime.tasks.config.objects)  # type: ignore[union-attr]
    app = TaskWorkerApp(TaskWorkerConfig.of(settings, queue), settings, phase="proxied worker")
    readiness = Readiness()
    readiness.add(app.phase, 30)
    redis, client = redis_pool(settings.redis_url), AlgorithmClient()
    try:
        await asyncio.to_thread(stores.register, queue)
        await deploy([app], readiness, client)
        assert readiness.is_ready(app.phase), readiness.report()
        yield ProxiedWorker(proxy, TaskStore(redis, prefix=queue.prefix), redis)
    finally:
        await proxy.cut()
        await asyncio.to_thread(serve.delete, app.name)
        await asyncio.gather(redis.aclose(), client.close())


async def test_a_task_that_ends_while_redis_is_unreachable_keeps_its_result(worker: ProxiedWorker,
                                                                           settings: Settings, tmp_path: Path):
    """The outage outlasts the visibility timeout, so the worker's claim goes stale meanwhile."""
    store, marker = worker.store, tmp_path / "task"
    # One attempt only: a second delivery of this task would fail it as "worker lost".
    task = await store.submit("test-sleep-async", {"seconds": 2, "marker": str(marker)}, max_attempts=1)
    await poll(marked(marker, "started"))
    await worker.proxy.cut()
    await poll(marked(marker, "slept"), timeout_s=20)  # the worker has the result and cannot write it
    visibility_s = settings.task_visibility_timeout_seconds

    async def claim_went_stale() -> bool:  # the worker could not renew it
        entries = await worker.redis.xpending_range(store.keys.stream, store.keys.group, "-", "+", 1)
        return bool(entries) and entries[0]["time_since_delivered"] > visibility_s * 1000

    await poll(claim_went_stale, timeout_s=4 * visibility_s)
    during = await store.get(task.task_id)
    assert during is not None and during.status is TaskStatus.RUNNING
    await worker.proxy.start()
    ended = await poll(lambda: worker.ended(task.task_id), timeout_s=60)
    assert ended.status is TaskStatus.COMPLETED, ended.error
    assert ended.result == {"slept": 2} and ended.attempts == 1


async def test_a_cancel_sent_while_the_worker_was_cut_off_still_stops_the_task(worker: ProxiedWorker,
                                                                              tmp_path: Path):
    """Pub/sub does not replay the cancel the worker missed; it finds out when it is back."""
    store, marker = worker.store, tmp_path / "task"
    task = await store.submit("test-sleep-async", {"seconds": 60, "marker": str(marker)})
    await poll(marked(marker, "started"))
    await worker.proxy.cut()
    cancelled = await store.cancel(task.task_id)  # published while the worker cannot be subscribed
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    await worker.proxy.start()
    assert await poll(marked(marker, "cancelled"), timeout_s=30)  # the replica's work stopped
