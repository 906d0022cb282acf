"""The task store against a real Redis-compatible server (the bundled Valkey, over TCP)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from engines.errors import UpstreamFailed
from storage import (
    REDIS_UNREACHABLE,
    DataDirInUse,
    EmbeddedRedis,
    TaskRecord,
    TaskStatus,
    TaskStore,
    redis_pool,
)
from storage.heartbeats import Heartbeats
from tests.polling import poll
from tests.redis_fixture import (  # noqa: F401  (fixtures)
    StoreFactory,
    redis_client_fixture,
    redis_server_fixture,
    store_factory_fixture,
)

FAST = 0.2  # visibility timeout, in seconds, for the tests where a worker "dies"


@pytest.fixture
def store(make_store: StoreFactory) -> TaskStore:
    return make_store(visibility_timeout_s=30)


async def pending(client: Redis, store: TaskStore) -> int:
    return (await client.xpending(store.keys.stream, store.keys.group))["pending"]


async def claim_one(store: TaskStore, worker: str, block_ms: int) -> TaskRecord | None:
    """One task for ``worker``, as a worker with one free slot claims it."""
    records = await store.claim(worker, 1, block_ms=block_ms)
    return records[0] if records else None


async def start(store: TaskStore, worker: str, **submit: object) -> TaskRecord:
    """Submit a task and have ``worker`` claim (and so start) it."""
    record = await store.submit("echo", {"n": 1}, **submit)  # type: ignore[arg-type]
    claimed = await claim_one(store, worker, block_ms=1000)
    assert claimed is not None and claimed.task_id == record.task_id
    return claimed


# -- submitting and reading ----------------------------------------------


async def test_submit_then_get_returns_the_same_record(store: TaskStore):
    record = await store.submit("text-embedding", {"texts": ["héllo"], "scale": 1.5},
                                callback_url="https://example.com/hook", timeout_s=30, max_attempts=2)
    assert len(record.task_id) == 32 and record.status is TaskStatus.QUEUED
    assert abs(record.created_at - time.time()) < 5
    assert await store.get(record.task_id) == record
    public = record.public()
    assert public["status"] == "queued" and public["callback_url"] == "https://example.com/hook"
    assert "message_id" not in public
    json.dumps(public)  # ready to send as is
    assert await store.get("no-such-task") is None


async def test_the_documented_layout_is_what_is_stored(store: TaskStore, redis_client: Redis):
    record = await store.submit("echo", {"a": [1, 2]}, timeout_s=5, max_attempts=4)
    stored = await redis_client.hgetall(f"{store.keys.prefix}:task:{record.task_id}")
    assert stored["status"] == "queued" and stored["algorithm"] == stored["model"] == "echo"
    assert stored["task_id"] == record.task_id and float(stored["ts"]) == float(stored["created_at"])
    assert json.loads(stored["payload"]) == {"a": [1, 2]}
    assert stored["attempts"] == "0" and stored["max_attempts"] == "4" and float(stored["timeout_s"]) == 5
    (_, entry), = await redis_client.xrange(f"{store.keys.prefix}:tasks")
    assert entry == {"task_id": record.task_id, "algorithm": "echo", "model": "echo", "payload": '{"a":[1,2]}',
                     "status": "queued", "ts": stored["created_at"]}


async def test_every_status_change_sets_ts_and_old_records_read_succeeded_as_completed(
        store: TaskStore, redis_client: Redis):
    running = await start(store, "w1")
    key = f"{store.keys.prefix}:task:{running.task_id}"
    claimed_ts = float(await redis_client.hget(key, "ts"))
    assert claimed_ts == float(await redis_client.hget(key, "started_at"))
    await store.finish(running.task_id, TaskStatus.COMPLETED, result={"ok": True})
    assert float(await redis_client.hget(key, "ts")) == float(await redis_client.hget(key, "finished_at"))
    await redis_client.hset(key, "status", "succeeded")  # as a version before "completed" wrote it
    assert (await store.get(running.task_id)).status is TaskStatus.COMPLETED


async def test_a_recorded_sync_call_reads_like_a_task_and_expires_like_one(store: TaskStore, redis_client: Redis):
    ok = await store.record_call("echo", {"text": "hi"}, 1700000000.5, result={"text": "hi"})
    failed = await store.record_call("echo", {"text": "boom"}, 1700000000.5, error=UpstreamFailed("down"))
    done = await store.get(ok)
    assert (done.status, done.result, done.payload, done.started_at) == (
        TaskStatus.COMPLETED, {"text": "hi"}, {"text": "hi"}, 1700000000.5)
    assert done.finished_at > done.started_at and done.attempts == 1 and done.progress == 1
    assert (await store.get(failed)).error == {"type": "upstream_failed", "message": "down"}
    assert 0 < await redis_client.ttl(f"{store.keys.prefix}:task:{ok}") <= store.task_ttl_s
    assert await redis_client.xlen(store.keys.stream) == 0  # in no queue: it has run already


async def test_bad_submissions_are_refused_before_anything_is_stored(store: TaskStore):
    with pytest.raises(ValueError, match="max_attempts"):
        await store.submit("echo", {}, max_attempts=0)
    with pytest.raises(TypeError):
        await store.submit("echo", {"x": object()})
    with pytest.raises(ValueError):
        await store.submit("echo", {"x": float("nan")})
    assert await store.recent() == []


async def test_a_client_that_does_not_decode_is_refused(redis_server: EmbeddedRedis):
    raw = Redis.from_url(redis_server.url)
    with pytest.raises(ValueError, match="decode_responses"):
        TaskStore(raw)
    await raw.aclose()


# -- claiming ------------------------------------------------------------


async def test_one_worker_claims_a_task_and_no_other_gets_it(store: TaskStore):
    record = await store.submit("echo", {})
    claimed = await claim_one(store, "w1", block_ms=1000)
    assert claimed is not None and claimed.task_id == record.task_id
    assert claimed.attempts == 1 and claimed.worker_id == "w1" and claimed.status is TaskStatus.RUNNING
    assert await claim_one(store, "w2", block_ms=50) is None
    running = await store.get(record.task_id)
    assert running is not None and running.status is TaskStatus.RUNNING and running.started_at
    assert running.worker_id == "w1"


async def test_a_worker_claims_as_many_as_it_asks_for_in_one_go(store: TaskStore):
    records = [await store.submit("echo", {"i": i}) for i in range(5)]
    first = await store.claim("w1", 3, block_ms=1000)
    assert [r.task_id for r in first] == [r.task_id for r in records[:3]]  # oldest first
    rest = await store.claim("w2", 10, block_ms=50)
    assert [r.task_id for r in rest] == [r.task_id for r in records[3:]]
    assert {r.status for r in first + rest} == {TaskStatus.RUNNING}
    assert await store.claim("w3", 10, block_ms=50) == []


async def test_a_blocked_worker_wakes_for_a_new_submission(store: TaskStore):
    await claim_one(store, "w1", block_ms=0)  # creates the group; nothing to claim yet
    claim = asyncio.create_task(claim_one(store, "w1", block_ms=10_000))
    record = await store.submit("echo", {})
    claimed = await asyncio.wait_for(claim, 5)
    assert claimed is not None and claimed.task_id == record.task_id


async def test_workers_recover_when_the_stream_is_deleted_under_them(store: TaskStore, redis_client: Redis):
    await store.submit("echo", {})
    await redis_client.delete(store.keys.stream)  # e.g. an operator's cleanup: the group goes with it
    record = await store.submit("echo", {})
    claimed = await claim_one(store, "w1", block_ms=1000)
    assert claimed is not None and claimed.task_id == record.task_id


async def test_a_dead_workers_task_is_redelivered_after_the_visibility_timeout(make_store: StoreFactory,
                                                                               redis_client: Redis):
    store = make_store(visibility_timeout_s=FAST)
    record = await start(store, "doomed", max_attempts=3)  # ... and "doomed" never finishes it
    again = await poll(lambda: claim_one(store, "rescuer", block_ms=50))
    assert again.task_id == record.task_id and again.attempts == 2 and again.worker_id == "rescuer"
    assert again.status is TaskStatus.RUNNING and again.started_at >= record.started_at  # type: ignore[operator]
    assert await store.finish(record.task_id, TaskStatus.COMPLETED, {"ok": True})
    assert await pending(redis_client, store) == 0


async def test_a_run_started_again_in_place_counts_as_an_attempt_and_uses_up_redeliveries(
        make_store: StoreFactory):
    """A worker whose replica died reruns the task itself; that rerun spends an attempt as a redelivery would."""
    store = make_store(visibility_timeout_s=FAST)
    record = await start(store, "w1", max_attempts=2)
    assert await store.retry(record.task_id) == 2
    assert (await store.get(record.task_id)).attempts == 2  # type: ignore[union-attr]
    # ... and then w1 dies too: no attempt is left for a redelivery
    gone = await poll(lambda: _claimed_until_ended(store, record.task_id), what="the task failed")
    assert gone.status is TaskStatus.FAILED and gone.attempts == 2
    assert gone.error["type"] == "worker_lost" and "tried 2 times" in gone.error["message"]  # type: ignore[index]


async def test_a_task_that_ended_is_not_started_again_in_place(store: TaskStore):
    record = await start(store, "w1")
    await store.cancel(record.task_id)
    assert await store.retry(record.task_id) == 0
    assert await store.retry("0" * 32) == 0  # no such task
    assert (await store.get(record.task_id)).attempts == 1  # type: ignore[union-attr]


async def _claimed_until_ended(store: TaskStore, task_id: str) -> TaskRecord | None:
    """Have another worker claim stale tasks once; the task's record if that ended it."""
    assert await claim_one(store, "rescuer", block_ms=50) is None  # never delivered again
    record = await store.get(task_id)
    return record if record is not None and record.terminal else None


async def test_renewed_leases_keep_a_long_task_with_its_worker(make_store: StoreFactory):
    visibility_s = 0.5
    store = make_store(visibility_timeout_s=visibility_s)
    record = await start(store, "slow")
    window = time.monotonic() + 3 * visibility_s
    while time.monotonic() < window:  # three timeouts long, renewing well within each
        assert await store.renew_leases("slow", [record.message_id]) == 1  # type: ignore[list-item]
        assert await claim_one(store, "other", block_ms=50) is None
    assert (await store.get(record.task_id)).worker_id == "slow"  # type: ignore[union-attr]


async def test_a_claim_whose_task_stopped_running_is_not_renewed(make_store: StoreFactory):
    """A worker renews only the tasks it still runs; one it lost (its coroutine died) is redelivered."""
    store = make_store(visibility_timeout_s=FAST)
    kept = await start(store, "w1")
    lost = await start(store, "w1")
    assert await store.renew_leases("w1", []) == 0
    window = time.monotonic() + 3 * FAST
    redelivered = None
    while time.monotonic() < window and redelivered is None:
        assert await store.renew_leases("w1", [kept.message_id]) == 1  # type: ignore[list-item]
        redelivered = await claim_one(store, "w2", block_ms=50)
    assert redelivered is not None and redelivered.task_id == lost.task_id and redelivered.attempts == 2
    assert await claim_one(store, "w2", block_ms=50) is None  # the kept one stayed with w1
    assert (await store.get(kept.task_id)).worker_id == "w1"  # type: ignore[union-attr]


async def test_a_worker_takes_back_its_own_stale_claim_without_starting_the_task_again(make_store: StoreFactory,
                                                                                      redis_client: Redis):
    """Its renewals failed past the visibility timeout (Redis was unreachable) while the task ran on:
    the worker's next claim takes that claim back as it is, not as a new attempt or a lost worker."""
    store = make_store(visibility_timeout_s=FAST)
    running = await start(store, "w1", max_attempts=1)  # a second delivery would fail it as "worker lost"

    async def gone_stale() -> bool:
        entries = await redis_client.xpending_range(store.keys.stream, store.keys.group, "-", "+", 10)
        return bool(entries) and entries[0]["time_since_delivered"] >= FAST * 1000

    await poll(gone_stale)
    assert await store.claim("w1", 5, block_ms=50, held={running.message_id}) == []
    record = await store.get(running.task_id)
    assert record is not None and record.status is TaskStatus.RUNNING
    assert record.attempts == 1 and record.worker_id == "w1"
    assert await claim_one(store, "w2", block_ms=50) is None  # taking it back renewed it
    assert await store.finish(running.task_id, TaskStatus.COMPLETED, {"ok": True})


async def test_a_task_whose_workers_keep_dying_fails_with_the_reason(make_store: StoreFactory, redis_client: Redis):
    store = make_store(visibility_timeout_s=FAST)
    record = await store.submit("echo", {}, max_attempts=2)
    for n, worker in enumerate(("w1", "w2"), start=1):
        claimed = await poll(lambda w=worker: claim_one(store, w, block_ms=50))
        assert claimed.attempts == n and claimed.status is TaskStatus.RUNNING  # then its worker dies
    failed = await poll(lambda: _claimed_until_ended(store, record.task_id), what="the task failed")
    assert failed.status is TaskStatus.FAILED and failed.attempts == 2
    assert failed.error is not None and failed.error["type"] == "worker_lost"
    assert failed.error["message"] == ("tried 2 times, and each time its worker or replica died before "
                                       "finishing; gave up at max_attempts=2")
    assert await pending(redis_client, store) == 0
    assert await redis_client.ttl(store.keys.task(record.task_id)) > 0


async def test_many_submissions_are_each_claimed_exactly_once(store: TaskStore, redis_client: Redis):
    claims: Counter[str] = Counter()
    total = 200

    async def consumer(worker: str) -> None:
        deadline = time.monotonic() + 60
        while sum(claims.values()) < total and time.monotonic() < deadline:
            record = await claim_one(store, worker, block_ms=100)
            if record is not None:
                claims[record.task_id] += 1
                assert await store.finish(record.task_id, "completed", record.payload)

    consumers = [asyncio.create_task(consumer(f"w{i}")) for i in range(4)]
    records = await asyncio.gather(*(store.submit("bulk", {"i": i}) for i in range(total)))
    await asyncio.gather(*consumers)
    assert len({r.task_id for r in records}) == total
    assert set(claims) == {r.task_id for r in records} and set(claims.values()) == {1}
    assert await claim_one(store, "late", block_ms=50) is None
    assert await pending(redis_client, store) == 0
    done = await store.recent(status="completed", limit=total)
    assert len(done) == total and {r.attempts for r in done} == {1}


# -- cancelling ----------------------------------------------------------


async def test_a_task_cancelled_while_queued_is_never_started(store: TaskStore, redis_client: Redis):
    claimed_then_cancelled = await store.submit("echo", {})
    cancelled_unclaimed = await store.submit("echo", {})
    claimed = await claim_one(store, "w1", block_ms=1000)
    assert claimed is not None and claimed.task_id == claimed_then_cancelled.task_id  # oldest first
    cancelled = await store.cancel(claimed_then_cancelled.task_id)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert not await store.finish(claimed_then_cancelled.task_id, "completed", {"late": True})
    assert await store.cancel(cancelled_unclaimed.task_id)
    assert await claim_one(store, "w2", block_ms=50) is None  # skipped, not run
    assert await pending(redis_client, store) == 0
    assert await store.cancel("no-such-task") is None


async def test_cancel_running_tells_the_worker_and_a_late_result_is_dropped(store: TaskStore,
                                                                            redis_client: Redis):
    record = await start(store, "w1")
    notices = store.cancellations()
    notice = asyncio.create_task(anext(notices))
    await poll(lambda: _subscribers(redis_client, store.keys.cancel_channel))
    cancelled = await store.cancel(record.task_id)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert await asyncio.wait_for(notice, 5) == record.task_id
    await notices.aclose()
    assert not await store.set_progress(record.task_id, 0.9)  # the worker's cue to stop
    assert not await store.finish(record.task_id, "completed", {"late": True})
    final = await store.get(record.task_id)
    assert final is not None and final.status is TaskStatus.CANCELLED and final.result is None
    assert (await store.cancel(record.task_id)).finished_at == final.finished_at  # type: ignore[union-attr]


async def test_a_worker_can_ask_which_of_its_tasks_ended_elsewhere(store: TaskStore):
    """Its fallback for cancellations sent while it was not subscribed (pub/sub does not replay)."""
    running, cancelled, finished = [await start(store, "w1") for _ in range(3)]
    queued = await store.submit("echo", {})
    await store.cancel(cancelled.task_id)
    await store.finish(finished.task_id, TaskStatus.COMPLETED, {"ok": True})
    ids = [running.task_id, cancelled.task_id, queued.task_id, finished.task_id, "0123456789abcdef"]
    assert await store.ended(ids) == [cancelled.task_id, finished.task_id, "0123456789abcdef"]
    assert await store.ended([]) == []


async def test_an_ended_task_stays_as_it_ended(store: TaskStore):
    record = await start(store, "w1")
    assert await store.finish(record.task_id, "failed", error=UpstreamFailed("the API said 500"))
    assert not await store.finish(record.task_id, "completed", 1)
    after = await store.cancel(record.task_id)
    assert after is not None and after.status is TaskStatus.FAILED
    assert after.error == {"type": "upstream_failed", "message": "the API said 500"}
    with pytest.raises(ValueError, match="terminal"):
        await store.finish(record.task_id, "running")


async def test_ended_tasks_expire_and_live_ones_do_not(make_store: StoreFactory, redis_client: Redis):
    store = make_store(task_ttl_s=3600)
    running = await start(store, "w1")
    ended = await start(store, "w1")
    await store.finish(ended.task_id, "failed", error=ValueError("boom"))
    assert await redis_client.ttl(store.keys.task(running.task_id)) == -1
    assert 0 < await redis_client.ttl(store.keys.task(ended.task_id)) <= 3600
    assert 0 < await redis_client.ttl(store.keys.done(ended.task_id)) <= 3600
    assert (await store.get(ended.task_id)).error == {"type": "ValueError", "message": "boom"}  # type: ignore[union-attr]


async def test_an_expired_task_is_gone(make_store: StoreFactory):
    store = make_store(task_ttl_s=1)
    ended = await start(store, "w1")
    await store.finish(ended.task_id, "completed", result={"ok": True})

    async def gone() -> bool:
        return await store.get(ended.task_id) is None

    assert await poll(gone, timeout_s=10)


# -- waiting and watching ------------------------------------------------


async def test_wait_returns_as_soon_as_another_coroutine_finishes_the_task(store: TaskStore, redis_client: Redis):
    record = await start(store, "w1")
    waiters = [asyncio.create_task(store.wait(record.task_id, timeout_s=30)) for _ in range(3)]
    await poll(lambda: _blocked_on_blmove(redis_client, 3))  # really blocked, not polling
    finished_at = time.monotonic()
    await store.finish(record.task_id, "completed", {"answer": 42})
    results = await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert time.monotonic() - finished_at < 1
    assert all(r is not None and r.status is TaskStatus.COMPLETED and r.result == {"answer": 42} for r in results)
    assert (await store.wait(record.task_id, timeout_s=30)).result == {"answer": 42}  # type: ignore[union-attr]


async def test_wait_returns_the_running_record_when_time_is_up(store: TaskStore):
    record = await start(store, "w1")
    began = time.monotonic()
    waited = await store.wait(record.task_id, timeout_s=0.3)
    assert 0.25 <= time.monotonic() - began < 2
    assert waited is not None and waited.status is TaskStatus.RUNNING
    assert await store.wait("no-such-task", timeout_s=1) is None


async def test_watch_yields_each_progress_update_then_the_end(store: TaskStore):
    record = await start(store, "w1")
    seen: asyncio.Queue[TaskRecord] = asyncio.Queue()

    async def watcher() -> None:
        async for update in store.watch(record.task_id, timeout_s=30, poll_s=30):  # events only, no polling
            await seen.put(update)

    watching = asyncio.create_task(watcher())
    assert (await asyncio.wait_for(seen.get(), 5)).status is TaskStatus.RUNNING
    for fraction in (0.25, 0.5, 7.0):
        assert await store.set_progress(record.task_id, fraction, f"at {fraction}")
        update = await asyncio.wait_for(seen.get(), 5)
        assert update.progress == min(fraction, 1.0) and update.progress_message == f"at {fraction}"
    await store.finish(record.task_id, "completed", "done")
    last = await asyncio.wait_for(seen.get(), 5)
    assert last.status is TaskStatus.COMPLETED and last.progress == 1.0
    await asyncio.wait_for(watching, 5)  # the generator ends with the task
    with pytest.raises(ValueError):
        await store.set_progress(record.task_id, float("nan"))


# -- listing, heartbeats, restarts ----------------------------------------


async def test_list_is_newest_first_and_filters(store: TaskStore):
    old = [await store.submit("old", {"i": i}) for i in range(3)]
    await asyncio.gather(*(store.submit("new", {"i": i}) for i in range(150)))
    assert [r.task_id for r in await store.recent(algorithm="old")] == [r.task_id for r in reversed(old)]
    await store.cancel(old[1].task_id)
    assert [r.task_id for r in await store.recent(status=TaskStatus.CANCELLED)] == [old[1].task_id]
    newest = await store.recent(limit=5)
    assert len(newest) == 5 and {r.algorithm for r in newest} == {"new"}


async def test_a_worker_without_heartbeats_drops_out_of_the_live_list(store: TaskStore):
    heartbeats = Heartbeats(store.redis, prefix=store.keys.prefix)
    await heartbeats.beat("short-lived", {"algorithms": ["echo"]}, ttl_s=0.3)
    await heartbeats.beat("steady", {"algorithms": ["echo"], "pid": 7}, ttl_s=30)
    workers = {w["worker_id"]: w for w in await heartbeats.live()}
    assert set(workers) == {"short-lived", "steady"} and workers["steady"]["pid"] == 7

    async def only_steady_left() -> bool:
        return [w["worker_id"] for w in await heartbeats.live()] == ["steady"]

    await poll(only_steady_left)


async def test_tasks_survive_a_server_restart_on_the_same_data_dir(tmp_path):
    server = EmbeddedRedis(tmp_path / "data")
    try:
        client = redis_pool(server.start())
        store = TaskStore(client, prefix="restart")
        running = await start(store, "w1")
        await store.set_progress(running.task_id, 0.5, "half way")
        queued = await store.submit("echo", {"keep": "me"})
        with pytest.raises(DataDirInUse):
            EmbeddedRedis(tmp_path / "data").start()
        await client.aclose()
        server.stop()
        assert not server.running

        client = redis_pool(server.start())
        store = TaskStore(client, prefix="restart")
        survivor = await store.get(running.task_id)
        assert survivor is not None and survivor.status is TaskStatus.RUNNING
        assert survivor.progress == 0.5 and survivor.progress_message == "half way"
        claimed = await claim_one(store, "w2", block_ms=1000)  # the queue survived too
        assert claimed is not None and claimed.task_id == queued.task_id and claimed.payload == {"keep": "me"}
        await client.aclose()
    finally:
        server.stop()


async def _subscribers(client: Redis, channel: str) -> int:
    return dict(await client.pubsub_numsub(channel)).get(channel, 0)


async def _blocked_on_blmove(client: Redis, count: int) -> bool:
    return sum(c.get("cmd") == "blmove" for c in await client.client_list()) >= count


async def test_a_bundled_server_that_died_is_revived_on_its_url_with_its_data(tmp_path: Path):
    server = EmbeddedRedis(tmp_path / "data", appendfsync="always")
    url = server.start()
    client = redis_pool(url)
    try:
        await client.set("kept", "yes")
        pid = int((server.data_dir / "valkey.pid").read_text())
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
        await poll(lambda: server.died, what="the death noticed")
        assert server.revive() == url  # what the local cluster's keeper does when it sees it

        async def read_back() -> str | None:
            with contextlib.suppress(*REDIS_UNREACHABLE):
                return await client.get("kept")  # the same client: its pool reconnects to the same URL
            return None

        assert await poll(read_back, what="the server came back") == "yes"
        assert int((server.data_dir / "valkey.pid").read_text()) != pid
    finally:
        await client.aclose()
        server.stop()


async def test_ended_tasks_are_counted_by_status_with_their_latency(store: TaskStore):
    """Counters for /metrics, kept as tasks end (each counted once, however often an end is written)."""
    done = await start(store, "w1")
    assert await store.finish(done.task_id, TaskStatus.COMPLETED, result={"ok": 1})
    assert not await store.finish(done.task_id, TaskStatus.FAILED, error={"type": "x", "message": "late"})
    failed = await start(store, "w1")
    assert await store.finish(failed.task_id, TaskStatus.FAILED, error={"type": "x", "message": "no"})
    queued = await store.submit("other", {"n": 2})
    await store.cancel(queued.task_id)
    stats = await store.ended_stats()
    assert stats.ended == {"completed": 1, "failed": 1, "cancelled": 1}
    assert sum(stats.latency["echo"].values()) == 2 and sum(stats.latency["other"].values()) == 1
    assert min(stats.latency["echo"]) == 0.1  # both ended within 100 ms of their submission
    assert 0 <= stats.latency_sum["echo"] < 1
