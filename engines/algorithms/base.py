"""The contract an algorithm class fulfils: typed input/output and a predict.

An algorithm never reads placement settings (replicas, CPUs, GPUs, batching):
those live in its registry entry and are applied by ``engines.serving.deploy``. It
implements ``predict`` for one input, or ``predict_batch`` for many when it
gains from batching (torch models), and may load weights in ``setup``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from engines.algorithms import context
from engines.algorithms.config import AlgorithmConfig

T = TypeVar("T")


class Algorithm:
    """Base class for every algorithm, local or external."""

    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    #: its own settings, read from the environment (see AlgorithmConfig)
    Config: ClassVar[type[AlgorithmConfig]] = AlgorithmConfig
    #: MCP annotations: the call changes nothing outside the algorithm…
    read_only: ClassVar[bool] = True
    #: …and the same input gives the same output.
    idempotent: ClassVar[bool] = True
    _model_thread: ThreadPoolExecutor | None = None

    def __init__(self, config: AlgorithmConfig | None = None) -> None:
        """``config`` is what the gateway read for this algorithm; by default it is read here."""
        self.config = config if config is not None else self.Config()

    async def setup(self) -> None:
        """Load models or open clients; called once per replica before any call."""

    async def close(self) -> None:
        """Release what ``setup`` opened; called when the replica stops."""

    async def preprocess(self, inp: BaseModel) -> BaseModel:
        """Normalise a validated input before ``predict`` (S1 pre-processing); runs per call, outside batches."""
        return inp

    async def postprocess(self, inp: BaseModel, out: BaseModel) -> BaseModel:
        """Format a result (S1 post-processing): round, rename, store files with ``save_output``."""
        return out

    async def predict(self, inp: BaseModel) -> BaseModel:
        (out,) = await self.predict_batch([inp])
        if isinstance(out, BaseException):
            raise out
        return out

    async def predict_batch(self, inputs: list[BaseModel]) -> list[BaseModel | Exception]:
        """Outputs in input order; an exception in an input's place fails that call alone."""
        return list(await asyncio.gather(*(self.predict(i) for i in inputs), return_exceptions=True))

    async def run_model(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on this replica's one model thread, off the event loop.

        Forward passes then run one at a time, as the replica's CPU/GPU share
        assumes: concurrent calls batch (or queue) instead of oversubscribing
        the node with one thread each, and the event loop stays free to take
        the next calls meanwhile.
        """
        if self._model_thread is None:
            self._model_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{type(self).__name__}-model")
        return await asyncio.get_running_loop().run_in_executor(self._model_thread, fn, *args)

    @staticmethod
    async def report_progress(fraction: float, message: str | None = None) -> bool:
        """Tell a queued task's caller how far along it is; False means it was cancelled: stop."""
        return await context.report_progress(fraction, message)

    @staticmethod
    async def save_output(name: str, data: bytes, content_type: str) -> dict:
        """Store a produced file under ``outputs/<task_id>/``; returns ``{url, key, content_type, bytes}``."""
        return await context.save_output(name, data, content_type)

    @classmethod
    def starts_slowly(cls) -> bool:
        """True when ``setup`` loads something (a model): such algorithms deploy after the quick
        ones, so on a cold start cheap tools answer while the models still load."""
        return cls.setup is not Algorithm.setup

    @classmethod
    def overrides_predict(cls) -> bool:
        """True when the class implements one of the two predict methods."""
        return cls.predict is not Algorithm.predict or cls.predict_batch is not Algorithm.predict_batch
