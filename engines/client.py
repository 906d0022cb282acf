"""Calls into algorithm deployments: the only code that holds Serve handles.

The gateway (MCP tools and REST alike) goes through :class:`AlgorithmClient`,
so validation, the busy answer, timeouts, cancellation and error mapping are
done once. Validation happens here, before anything reaches Ray.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

from pydantic import BaseModel
from ray import serve
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.handle import DeploymentHandle

from engines.errors import AlgoError, Busy, ReplicaUnavailable, TimedOut
from engines.registry import Entry, Registry
from engines.task_context import TaskQueueConfig
from engines.validation import validate_input

log = logging.getLogger(__name__)

_EWMA_WEIGHT = 0.2


class AlgorithmClient:
    """Validates inputs and calls the Serve deployment of an algorithm."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._handles: dict[str, DeploymentHandle] = {}
        self._latency_s: dict[str, float] = {}
        #: where replicas write progress and outputs; set once the task queue runs
        self.context: TaskQueueConfig | None = None

    def handle(self, name: str) -> DeploymentHandle:
        """A handle per algorithm, made on first use (a registry may list many)."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = serve.get_deployment_handle(name, app_name=name)
        return handle

    def validate(self, name: str, arguments: Any) -> tuple[Entry, BaseModel]:
        entry = self.registry.get(name)
        return entry, validate_input(entry.cls.Input, arguments)

    async def invoke(self, name: str, arguments: Any) -> dict[str, Any]:
        """Validate ``arguments`` and run the algorithm; the result is its Output as JSON data."""
        entry, inp = self.validate(name, arguments)
        return await self.call(entry, inp)

    async def call(self, entry: Entry, inp: BaseModel, task_id: str | None = None) -> dict[str, Any]:
        """Run an already validated input, honouring the entry's timeout.

        If the caller is cancelled (the MCP client cancelled, the HTTP client
        went away, the task was cancelled) the Serve request is cancelled too,
        so the replica stops work. ``task_id`` lets the algorithm report progress.
        """
        return await self.call_deployment(entry.name, inp, entry.spec.timeout_s, task_id)

    async def call_deployment(self, name: str, inp: BaseModel | dict[str, Any], timeout_s: float,
                              task_id: str | None = None) -> dict[str, Any]:
        """Call a deployment by name; a dict input is validated by the replica (the task worker's way)."""
        context = (self.context, task_id) if self.context is not None else None
        response = self.handle(name).remote(inp, context)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout_s):
                result = await response
        except TimeoutError:
            response.cancel()
            raise TimedOut(name, timeout_s) from None
        except asyncio.CancelledError:
            response.cancel()
            raise
        except BackPressureError:
            raise Busy(name, self.retry_after_s(name)) from None
        except RayTaskError as exc:
            raise self._unwrap(name, exc) from None
        except RayActorError as exc:
            log.warning("%s: replica lost: %s", name, exc)
            raise ReplicaUnavailable(name, ReplicaUnavailable.DIED) from None
        except DeploymentUnavailableError:
            raise ReplicaUnavailable(name, ReplicaUnavailable.NONE_RUNNING) from None
        self._record_latency(name, loop.time() - started)
        return result

    @staticmethod
    def _unwrap(name: str, exc: RayTaskError) -> AlgoError:
        cause = exc.cause
        if isinstance(cause, AlgoError):
            return cause
        log.error("%s failed: %s", name, exc)
        return AlgoError(f"{name} failed with {type(cause).__name__}; see the server log")

    def _record_latency(self, name: str, seconds: float) -> None:
        prev = self._latency_s.get(name, seconds)
        self._latency_s[name] = prev + _EWMA_WEIGHT * (seconds - prev)

    def retry_after_s(self, name: str) -> int:
        """A hint for busy callers: about one typical call duration, at least a second."""
        return max(1, math.ceil(self._latency_s.get(name, 1.0)))
