"""Calls into algorithm deployments: the only code that holds Serve handles.

The gateway (MCP tools and REST alike, through ``engines.calls``) and the task
worker go through :class:`AlgorithmClient`, so the busy answer, timeouts,
cancellation and the mapping of Ray's errors are done once. A call carries only
a small :class:`~engines.algorithms.context.CallContext` beside its input.
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

from engines.algorithms.context import CallContext
from engines.errors import AlgoError, Busy, ReplicaUnavailable, TimedOut

log = logging.getLogger(__name__)

_EWMA_WEIGHT = 0.2


class AlgorithmClient:
    """Calls the Serve deployment of an algorithm by name."""

    def __init__(self) -> None:
        self._handles: dict[str, DeploymentHandle] = {}
        self._latency_s: dict[str, float] = {}

    async def close(self) -> None:
        """Stop the handles' routers (they run in this event loop) before leaving Ray."""
        handles, self._handles = list(self._handles.values()), {}
        await asyncio.gather(*(h.shutdown_async() for h in handles), return_exceptions=True)

    def handle(self, name: str) -> DeploymentHandle:
        """A handle per algorithm, made on first use (a registry may list many)."""
        handle = self._handles.get(name)
        if handle is None:
            handle = self._handles[name] = serve.get_deployment_handle(name, app_name=name)
        return handle

    def queued(self) -> dict[str, int]:
        """Calls waiting in this process for a replica slot, by algorithm: the router's own count (what
        Serve exports as ``serve_deployment_queued_queries`` and bounds by ``max_queued_requests``). Serve
        offers no public reader for it, so it is read where the router keeps it; an algorithm whose count
        cannot be read (Serve's internals moved) is left out rather than reported as 0."""
        counts = {}
        for name, handle in self._handles.items():
            router = getattr(getattr(handle, "_router", None), "_asyncio_router", None)
            count = getattr(getattr(router, "_metrics_manager", None), "num_queued_requests", None)
            if isinstance(count, int):
                counts[name] = count
        return counts

    async def call(self, name: str, inp: BaseModel | dict[str, Any], timeout_s: float,
                   context: CallContext | None = None) -> dict[str, Any]:
        """Run a validated input (a dict is rebuilt into the model by the replica), within ``timeout_s``.

        If the caller is cancelled (the MCP client cancelled, the HTTP client
        went away, the task was cancelled) the Serve request is cancelled too,
        so the replica stops work. ``context`` names the store outputs go to and
        the task progress is reported for.
        """
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
