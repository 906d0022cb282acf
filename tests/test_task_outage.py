"""Redis unreachable while a task runs and ends: the worker keeps the result and writes it once Redis is back.

The outage is real (a TCP hop the test cuts between a task worker and the
session's Redis) and outlasts the visibility timeout, so the worker's claim goes
stale meanwhile: the task must still end once, as it really ended.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit
from uuid import uuid4

from ray import serve

from engines import deploy
from engines.registry import Registry
from engines.settings import Settings
from engines.task_context import TaskQueueConfig
from storage import TaskRecord, TaskStatus, TaskStore, redis_pool
from tests.conftest import Running, poll
from tests.tcp_proxy import TcpProxy
from tests.test_limits import marked


async def test_a_task_that_ends_while_redis_is_unreachable_keeps_its_result(server: Running, settings: Settings,
                                                                           tmp_path: Path):
    assert settings.redis_url is not None
    target = urlsplit(settings.redis_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    # A task worker of its own, on a queue of its own, reaching Redis only through the proxy.
    queue = TaskQueueConfig(f"redis://127.0.0.1:{proxy.port}{target.path}", f"outage-{uuid4().hex[:8]}",
                            server.gateway.queue.config.objects)  # type: ignore[union-attr]
    redis = redis_pool(settings.redis_url)
    store = TaskStore(redis, prefix=queue.prefix)
    try:
        await deploy.deploy_all(Registry([]), settings, queue)
        marker = tmp_path / "task"
        # One attempt only: a second delivery of this task would fail it as "worker lost".
        task = await store.submit("test-sleep-async", {"seconds": 2, "marker": str(marker)}, max_attempts=1)
        await poll(marked(marker, "started"))
        await proxy.cut()
        await poll(marked(marker, "slept"), timeout_s=20)  # the worker has the result and cannot write it
        visibility_s = settings.task_visibility_timeout_seconds

        async def claim_went_stale() -> bool:  # the worker could not renew it
            entries = await redis.xpending_range(store.keys.stream, store.keys.group, "-", "+", 1)
            return bool(entries) and entries[0]["time_since_delivered"] > visibility_s * 1000

        await poll(claim_went_stale, timeout_s=4 * visibility_s)
        during = await store.get(task.task_id)
        assert during is not None and during.status is TaskStatus.RUNNING
        await proxy.start()
        ended = await poll(lambda: _ended(store, task.task_id), timeout_s=60)
        assert ended.status is TaskStatus.SUCCEEDED, ended.error
        assert ended.result == {"slept": 2} and ended.attempts == 1
    finally:
        await proxy.cut()
        await asyncio.to_thread(serve.delete, deploy.task_worker_app_name(queue))
        await redis.aclose()


async def _ended(store: TaskStore, task_id: str) -> TaskRecord | None:
    record = await store.get(task_id)
    return record if record is not None and record.status.terminal else None
