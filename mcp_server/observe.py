"""The gateway's service log, debug log and ``GET /metrics``.

Service log (``LOG_DIR/<SERVICE_NAME>.log``): one line per request: time, request id,
transport, target (tool or route), algorithm, status, outcome, duration and caller;
never arguments (they may hold keys or media). MCP tool calls are written by
:class:`ToolCallLog` (every MCP transport), other HTTP requests by :class:`RequestLog`;
the MCP transports' own HTTP requests only when refused (401, 413). Both set
:data:`~engines.metrics.current_request`, which the call counts under and fills in.

Debug log (``<SERVICE_NAME>_debug.log``): every ``DEBUG_LOG_INTERVAL_S``, what queues,
what runs and what it costs: tasks queued and running, calls in flight per algorithm,
each part's state (Serve's word for each application, with its running replicas),
process memory and CPU, and the Ray cluster's resources.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastmcp.server.dependencies import get_http_request
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from mcp_types import CallToolRequestParams
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request as HttpRequest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engines.gauges import RuntimeGauges
from engines.logs import LogFile
from engines.loops import every
from engines.metrics import Request, current_request, outcome_of
from engines.readiness import RAY
from engines.runtime import Runtime
from engines.settings import Settings

MCP_PATHS = ("/mcp", "/sse", "/messages")
#: a caller's X-Request-ID is kept when it looks like an id (it is written into the log as is)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class Observability:
    """The logs and the scrape-time gauges of one gateway; :meth:`running` is part of its lifespan."""

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        folder = settings.log_dir or settings.data_dir / "logs"
        options = {"max_bytes": settings.log_max_bytes, "retention_days": settings.log_retention_days}
        self.service = LogFile(folder / f"{settings.service_name}.log", settings.log_format, **options)
        self.debug = LogFile(folder / f"{settings.service_name}_debug.log", settings.log_format, **options)
        self.runtime, self.interval_s = runtime, settings.debug_log_interval_s
        self.gauges = RuntimeGauges(runtime)
        runtime.metrics.registry.register(self.gauges)
        self._cpu = (time.monotonic(), time.process_time())

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The debug log's loop while the gateway serves; both logs written out and closed after."""
        loop = asyncio.create_task(every(self.interval_s, self.write_debug_line, what="debug log"))
        try:
            yield
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            self.close()

    def close(self) -> None:
        self.service.close()
        self.debug.close()

    def request_line(self, request: Request, target: str, status: object, began: float, caller: str) -> None:
        self.service.write(request_id=request.request_id, transport=request.transport, target=target,
                           algorithm=request.algorithm or "-", status=status, outcome=request.outcome or "-",
                           duration_ms=round((time.perf_counter() - began) * 1000, 3), caller=caller or "-")

    async def metrics(self, request: HttpRequest) -> Response:
        """``GET /metrics``: Prometheus' text format, the scrape-time gauges read first."""
        await self.gauges.refresh()
        return Response(generate_latest(self.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def write_debug_line(self) -> None:
        snap = await self.gauges.refresh()
        health = await self.runtime.health()
        states = {name: f"{a['status']}/{a.get('replicas', 0)}" for name, a in health.get("algorithms", {}).items()}
        now, cpu = time.monotonic(), time.process_time()
        cpu_percent = 100 * (cpu - self._cpu[1]) / max(now - self._cpu[0], 1e-6)
        self._cpu = (now, cpu)
        self.debug.write(status=health["status"], tasks=snap.tasks, in_flight=dict(+self.runtime.metrics.running),
                         replicas=states or snap.phases, actors=snap.actors,
                         pipelines={p["name"]: p["total_lag"] for p in snap.pipelines or []},
                         rss_mb=_rss_mb(), cpu_percent=round(cpu_percent, 1), ray=await self._ray_resources())

    async def _ray_resources(self) -> dict[str, str] | None:
        """Each resource as ``available/total`` (CPU, GPU, memory), once Ray is joined."""
        if not self.runtime.readiness.is_ready(RAY):
            return None
        import ray

        total, free = await asyncio.gather(asyncio.to_thread(ray.cluster_resources),
                                           asyncio.to_thread(ray.available_resources))
        return {k: f"{free.get(k, 0):g}/{v:g}" for k, v in total.items() if k in ("CPU", "GPU", "memory")}


def _rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as statm:
            return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def _status(result: ToolResult) -> str:
    """``ok``, or the error's type from a tool error's structured content."""
    if not getattr(result, "is_error", False):
        return "ok"
    error = (result.structured_content or {}).get("error")
    return str(error.get("type", "error")) if isinstance(error, dict) else "error"


def _mcp_caller(context: MiddlewareContext[Any]) -> str:
    """The client's name (from its initialize) and address where known, and the MCP transport."""
    ctx = context.fastmcp_context
    parts = []
    try:
        params = ctx.session.client_params if ctx is not None else None
        if params is not None:
            parts.append(params.clientInfo.name)
    except (RuntimeError, AttributeError):
        pass
    try:
        client = get_http_request().client
        if client is not None:
            parts.append(f"{client.host}:{client.port}")
    except RuntimeError:  # stdio
        pass
    transport = ctx.transport if ctx is not None else None
    return " ".join([*parts, f"({transport})"] if transport else parts)


class ToolCallLog(Middleware):
    """Every MCP tool call: counted as ``transport=mcp`` and written to the service log."""

    def __init__(self, observability: Observability) -> None:
        self.observability = observability

    async def on_call_tool(self, context: MiddlewareContext[CallToolRequestParams],
                           call_next: CallNext[CallToolRequestParams, ToolResult]) -> ToolResult:
        request = Request("mcp", new_request_id())
        token, began, status = current_request.set(request), time.perf_counter(), "error"
        try:
            result = await call_next(context)
            status = _status(result)
            return result
        except BaseException as exc:
            status = outcome_of(exc)
            raise
        finally:
            current_request.reset(token)
            self.observability.request_line(request, f"tools/call {context.message.name}", status, began,
                                            _mcp_caller(context))


class RequestLog:
    """Every HTTP request but the MCP transports' (:class:`ToolCallLog` writes their tool calls):
    ``transport=rest``; its id (the caller's ``X-Request-ID`` or a new one) is echoed back. Pure ASGI,
    so SSE streams pass untouched."""

    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app, self.observability = app, observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request = Request("rest", given if _REQUEST_ID.match(given) else new_request_id())
        mcp = scope["path"].startswith(MCP_PATHS)
        status, began = 500, time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if not mcp:
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", request.request_id.encode())]
            await send(message)

        token = current_request.set(None if mcp else request)
        try:
            await self.app(scope, receive, sending)
        finally:
            current_request.reset(token)
            if not mcp or status >= 400:
                client = scope.get("client")
                self.observability.request_line(request, f"{scope['method']} {scope['path']}", status, began,
                                                f"{client[0]}:{client[1]}" if client else "")
