"""The one Serve deployment class that every algorithm runs inside.

It imports the algorithm class by its target, calls ``setup`` once per
replica, and routes calls through ``@serve.batch`` when the registry entry
asks for batching. Algorithm classes stay plain Python: nothing here is
specific to one of them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from ray import serve

from engines import progress
from engines.progress import TaskQueueConfig
from engines.registry import BatchSpec, import_target
from engines.validation import validate_input
from storage import TaskStore, redis_pool


@serve.deployment
class AlgorithmReplica:
    """Hosts one algorithm instance; Serve runs ``num_workers`` of these."""

    async def __init__(self, target: str, batch: BatchSpec | None, fingerprint: str) -> None:
        cls = import_target(target, where=target)
        self._input, self._output = cls.Input, cls.Output
        self._algo = cls()
        self._batched = batch is not None
        self._fingerprint = fingerprint
        self._store: TaskStore | None = None
        if batch is not None:
            self._predict_batched.set_max_batch_size(batch.max_batch_size)
            self._predict_batched.set_batch_wait_timeout_s(batch.batch_wait_timeout_s)
        await self._algo.setup()

    async def __del__(self) -> None:
        await self._algo.close()
        if self._store is not None:
            await self._store.redis.aclose()

    def _task_store(self, config: TaskQueueConfig) -> TaskStore:
        """One store per replica for progress writes, made on the first queued call."""
        if self._store is None:
            self._store = TaskStore(redis_pool(config.redis_url), prefix=config.prefix)
        return self._store

    def fingerprint(self) -> str:
        """What this replica was deployed with; a gateway compares it before redeploying."""
        return self._fingerprint

    @serve.batch
    async def _predict_batched(self, inputs: list[BaseModel]) -> list[BaseModel]:
        return await self._algo.predict_batch(inputs)

    async def __call__(self, inp: BaseModel | dict[str, Any],
                       task: tuple[TaskQueueConfig, str] | None = None) -> dict[str, Any]:
        if isinstance(inp, dict):  # a task payload, validated at submission: this only rebuilds the model
            inp = validate_input(self._input, inp)
        if task is not None:
            config, task_id = task
            progress.bind(self._task_store(config), task_id)
        out = await (self._predict_batched(inp) if self._batched else self._algo.predict(inp))
        if not isinstance(out, self._output):
            out = self._output.model_validate(out)
        return out.model_dump(mode="json")
