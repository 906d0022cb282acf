"""The one Serve deployment class that every algorithm runs inside.

It imports the algorithm class by its target, hands it the config the gateway
read for it, calls ``setup`` once per replica, loads, checks and prepares media
fields (``engines.media.resolve``), and routes calls through the batcher when
the registry entry asks for it. Algorithm classes stay plain Python: nothing
here is specific to one of them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel
from ray import serve

from engines.algorithms import context
from engines.algorithms.config import AlgorithmConfig
from engines.algorithms.context import CallContext
from engines.algorithms.registry import BatchSpec, import_target
from engines.algorithms.validation import validate_input
from engines.errors import AlgoError
from engines.media.resolve import media_plan, resolve_media
from engines.serving.batcher import Batcher


@serve.deployment
class AlgorithmReplica:
    """Hosts one algorithm instance; Serve runs ``num_workers`` of these."""

    async def __init__(self, target: str, prepare: dict[str, dict[str, Any]], config: AlgorithmConfig) -> None:
        cls = import_target(target, where=target)
        self._input, self._output = cls.Input, cls.Output
        self._media = media_plan(cls.Input, prepare)
        self._algo = cls(config)
        self._batcher: Batcher | None = None
        self._fingerprint = ""
        await self._algo.setup()

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve calls this after ``__init__`` and whenever the limits change at run time: batching
        changes here, on the running replica, without reloading its model."""
        self._fingerprint = user_config["fingerprint"]
        batch = BatchSpec.model_validate(user_config["batch"]) if user_config.get("batch") else None
        if batch is None:
            self._batcher = None
        elif self._batcher is None:
            self._batcher = Batcher(self._algo.predict_batch, batch.max_batch_size, batch.batch_wait_timeout_s)
        else:
            self._batcher.resize(batch.max_batch_size, batch.batch_wait_timeout_s)

    async def __del__(self) -> None:
        await self._algo.close()

    def fingerprint(self) -> str:
        """What this replica was deployed with; a gateway compares it before redeploying."""
        return self._fingerprint

    async def __call__(self, inp: BaseModel | dict[str, Any], call: CallContext | None = None) -> dict[str, Any]:
        if isinstance(inp, dict):  # a task payload, validated at submission: this only rebuilds the model
            inp = validate_input(self._input, inp)
        await context.bind(call)
        return await self._run(inp)

    async def many(self, inputs: list[Any], call: CallContext | None = None) -> list[dict[str, Any]]:
        """A pipeline's batch in one request (one round trip, not one per message): each input is
        validated here and joins the batcher like a call of its own; the answer is, in order,
        ``{"result": …}`` or ``{"error": {type, message}, "rejected": bool}`` (rejected: the input's
        own fault, a 4xx but busy; otherwise it may work if sent again)."""
        await context.bind(call)

        async def one(data: Any) -> dict[str, Any]:
            try:
                return {"result": await self._run(validate_input(self._input, data))}
            except AlgoError as err:
                return {"error": err.to_dict(), "rejected": 400 <= err.http_status < 500 and err.retry_after_s is None}
            except Exception as exc:  # the algorithm's own failure: the consumer retries it with backoff
                return {"error": {"type": "internal", "message": f"{type(exc).__name__}: {exc}"[:500]},
                        "rejected": False}

        return list(await asyncio.gather(*(one(data) for data in inputs)))

    async def _run(self, inp: BaseModel) -> dict[str, Any]:
        if self._media:
            inp = await resolve_media(inp, self._media)
        inp = await self._algo.preprocess(inp)
        out = await (self._batcher.submit(inp) if self._batcher else self._algo.predict(inp))
        out = await self._algo.postprocess(inp, out)
        if not isinstance(out, self._output):
            out = self._output.model_validate(out)
        return out.model_dump(mode="json")
