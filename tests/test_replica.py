"""The replica class in-process (no Ray): hooks run in order, task payloads are re-validated."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engines.algorithms.config import AlgorithmConfig
from engines.algorithms.registry import BatchSpec
from engines.errors import ValidationFailed
from engines.serving.replica import AlgorithmReplica
from tests.algorithms import Shout


async def replica(target: str, batch: BatchSpec | None = None, prepare: dict | None = None):
    """The deployment's class as Serve would build it (its ``__init__`` is async), in this process."""
    cls = AlgorithmReplica.func_or_class
    instance = cls.__new__(cls)
    await instance.__init__(target, prepare or {}, AlgorithmConfig())
    instance.reconfigure({"fingerprint": "fingerprint", "batch": batch.model_dump() if batch else None})
    return instance


@pytest.mark.parametrize("batch", [None, BatchSpec(max_batch_size=4, batch_wait_timeout_s=0)])
async def test_pre_and_post_processing_wrap_predict(batch: BatchSpec | None):
    shout = await replica("tests.algorithms:Shout", batch)
    assert await shout({"seconds": 2.6}) == {"slept": 30}  # rounded to 3 first, then x10
    assert shout.fingerprint() == "fingerprint"


async def test_batching_changes_on_a_running_replica():
    """What a live change of the batch settings does (Serve calls ``reconfigure``): the next batches
    take the new size, and batching can be turned on without rebuilding the replica."""
    shout = await replica("tests.algorithms:Shout")
    sizes: list[int] = []
    predict_batch = shout._algo.predict_batch

    async def recording(inputs: list) -> list:
        sizes.append(len(inputs))
        return await predict_batch(inputs)

    shout._algo.predict_batch = recording
    shout.reconfigure({"fingerprint": "two", "batch": {"max_batch_size": 2, "batch_wait_timeout_s": 0.05}})
    assert await asyncio.gather(*(shout({"seconds": 1}) for _ in range(6))) == [{"slept": 10}] * 6
    assert max(sizes) == 2 and shout.fingerprint() == "two"
    sizes.clear()
    shout.reconfigure({"fingerprint": "three", "batch": {"max_batch_size": 6, "batch_wait_timeout_s": 0.05}})
    await asyncio.gather(*(shout({"seconds": 1}) for _ in range(6)))
    assert max(sizes) > 2


async def test_a_task_payload_is_validated_again_in_the_replica():
    shout = await replica("tests.algorithms:Shout")
    with pytest.raises(ValidationFailed, match=r"seconds: must be >= 0 \(got -1\)"):
        await shout({"seconds": -1})


async def test_run_model_runs_forward_passes_one_at_a_time_off_the_event_loop():
    algo, running, most, threads = Shout(), 0, 0, set()
    lock = threading.Lock()

    def forward(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threads.add(threading.get_ident())
        time.sleep(0.01)
        with lock:
            running -= 1
        return i

    assert await asyncio.gather(*(algo.run_model(forward, i) for i in range(8))) == list(range(8))
    assert most == 1 and len(threads) == 1 and threading.get_ident() not in threads
