"""Dynamic batching that forms a batch only when the model is free.

Ray Serve's ``@serve.batch`` (2.60) closes a batch as soon as its wait ends,
even while the previous batch still runs, so calls that pile up during a
forward pass are split into many tiny batches and batching barely pays. Here
one loop per replica takes everything that is waiting, up to
``max_batch_size``, each time the model becomes free; it waits up to
``wait_s`` for company only when the queue is short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

BatchFn = Callable[[list[Any]], Awaitable[list[Any]]]


class Batcher:
    def __init__(self, fn: BatchFn, max_batch_size: int, wait_s: float) -> None:
        self._fn = fn
        self._max = max_batch_size
        self._wait_s = wait_s
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future]] = asyncio.Queue()
        self._loop_task: asyncio.Task | None = None

    def resize(self, max_batch_size: int, wait_s: float) -> None:
        """New limits, from the next batch on (the one running keeps its size)."""
        self._max, self._wait_s = max_batch_size, wait_s

    async def submit(self, item: Any) -> Any:
        """Queue one input and wait for its output; a cancelled caller's input is skipped."""
        if self._loop_task is None or self._loop_task.done():  # lazily, in the replica's event loop
            self._loop_task = asyncio.create_task(self._serve())
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    def _drain(self, batch: list[tuple[Any, asyncio.Future]]) -> None:
        while len(batch) < self._max and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _serve(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._drain(batch)
            if len(batch) < self._max and self._wait_s > 0:
                await asyncio.sleep(self._wait_s)
                self._drain(batch)
            live = [(item, future) for item, future in batch if not future.done()]
            if live:
                await self._run(live)

    async def _run(self, live: list[tuple[Any, asyncio.Future]]) -> None:
        try:
            outputs = await self._fn([item for item, _ in live])
            if len(outputs) != len(live):  # a broken predict_batch must not stop the loop (every call would hang)
                raise RuntimeError(f"predict_batch returned {len(outputs)} outputs for {len(live)} inputs")
        except Exception as exc:
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), output in zip(live, outputs, strict=True):
            if future.done():
                continue
            if isinstance(output, BaseException):  # that input alone failed
                future.set_exception(output)
            else:
                future.set_result(output)
