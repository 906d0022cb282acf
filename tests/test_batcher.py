"""The replica's batcher: batches form when the model is free, and one bad batch never stalls the rest."""

from __future__ import annotations

import asyncio

import pytest

from engines.serving.batcher import Batcher
from tests.polling import poll


class Model:
    """Doubles its inputs; each batch waits for ``release`` when ``gated``, and is recorded."""

    def __init__(self, gated: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        if not gated:
            self.release.set()

    async def __call__(self, inputs: list[int]) -> list[int | Exception]:
        self.batches.append(inputs)
        await self.release.wait()
        return [ValueError(f"odd {i}") if i < 0 else i * 2 for i in inputs]


async def test_concurrent_inputs_share_one_batch_and_keep_their_order():
    model = Model()
    batcher = Batcher(model, max_batch_size=8, wait_s=0.05)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert model.batches == [[0, 1, 2, 3, 4]]


async def test_calls_that_arrive_while_the_model_runs_form_the_next_batch():
    model = Model(gated=True)
    batcher = Batcher(model, max_batch_size=4, wait_s=0)
    first = asyncio.create_task(batcher.submit(1))
    await poll(lambda: model.batches == [[1]], timeout_s=5)
    later = [asyncio.create_task(batcher.submit(i)) for i in range(10, 16)]
    await asyncio.sleep(0)  # one loop turn: each task queues its input before it first awaits
    model.release.set()
    assert await first == 2 and await asyncio.gather(*later) == [20, 22, 24, 26, 28, 30]
    assert model.batches == [[1], [10, 11, 12, 13], [14, 15]]  # capped at max_batch_size


async def test_an_exception_in_an_inputs_place_fails_that_call_alone():
    batcher = Batcher(Model(), max_batch_size=8, wait_s=0.01)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
    assert results[0] == 2 and isinstance(results[1], ValueError)


async def test_a_failing_batch_fails_its_calls_and_the_next_batch_still_runs():
    calls = 0

    async def flaky(inputs: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("out of memory")
        return inputs

    batcher = Batcher(flaky, max_batch_size=8, wait_s=0)
    with pytest.raises(RuntimeError, match="out of memory"):
        await batcher.submit(1)
    assert await asyncio.wait_for(batcher.submit(2), 5) == 2


async def test_a_predict_batch_with_the_wrong_number_of_outputs_fails_clearly_and_hangs_nothing():
    async def short(inputs: list[int]) -> list[int]:
        return inputs[:-1] if len(inputs) > 1 else inputs

    batcher = Batcher(short, max_batch_size=8, wait_s=0.01)
    results = await asyncio.wait_for(asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True), 5)
    assert all(isinstance(r, RuntimeError) and "returned 1 outputs for 2 inputs" in str(r) for r in results)
    assert await asyncio.wait_for(batcher.submit(3), 5) == 3


async def test_an_input_whose_caller_gave_up_is_not_run():
    model = Model(gated=True)
    batcher = Batcher(model, max_batch_size=8, wait_s=0)
    first = asyncio.create_task(batcher.submit(1))
    await poll(lambda: model.batches == [[1]], timeout_s=5)
    abandoned = asyncio.create_task(batcher.submit(2))
    kept = asyncio.create_task(batcher.submit(3))
    await asyncio.sleep(0)  # one loop turn: both inputs are queued
    abandoned.cancel()
    model.release.set()
    assert await first == 2 and await kept == 6
    assert model.batches == [[1], [3]]
