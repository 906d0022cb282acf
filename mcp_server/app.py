"""Assemble the gateway from the registry: a FastMCP server, plus HTTP routes for network transports.

Building it needs no Ray: tools, schemas and the ``task://`` template come from
the registry, so ``initialize`` and ``tools/list`` answer within a second of
spawning. The server's lifespan enters the :class:`~engines.runtime.Runtime`,
which starts Redis, Ray and the deployments in the background; the same object
works under ``algo-mcp serve``, ``fastmcp run``/``dev`` and in tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from engines.algorithms.registry import Registry
from engines.runtime import Runtime
from engines.settings import Settings, get_settings
from mcp_server.actor_tools import ActorTools
from mcp_server.auth import BearerAuth
from mcp_server.body_limit import BodyLimit
from mcp_server.object_routes import object_routes
from mcp_server.observe import Observability, RequestLog, ToolCallLog
from mcp_server.pipeline_tools import PipelineTools
from mcp_server.rest import rest_app
from mcp_server.task_tools import TaskTools
from mcp_server.tools import ComponentTable, NearestTool, algorithm_tools
from storage.objects import LocalObjectStore

Lifespan = Callable[[FastMCP], AbstractAsyncContextManager[dict]]
INSTRUCTIONS = ("Each algorithm tool runs one registered algorithm on Ray Serve. Arguments are checked "
                "against the tool's schema; a 'busy' or 'starting' error says after how many seconds to retry. "
                "Long jobs answer at once with a task_id and say what to call next: wait_task with that "
                "task_id (or read task://<id>). Output files come as links and as object:// resources.")


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    runtime: Runtime
    mcp: FastMCP
    observability: Observability

    def http_app(self) -> Starlette:
        """Streamable HTTP at ``/mcp``, SSE at ``/sse``, REST beside them; one token guards all."""
        token = self.settings.mcp_auth_token
        middleware = [Middleware(RequestLog, observability=self.observability),
                      Middleware(BodyLimit, max_bytes=self.settings.max_request_bytes)]
        if token:
            middleware.append(Middleware(BearerAuth, token=token.get_secret_value()))
        app = self.mcp.http_app(path="/mcp", middleware=middleware)
        sse = self.mcp.http_app(transport="sse", path="/sse")
        app.router.routes.extend(r for r in sse.routes if getattr(r, "path", None) in ("/sse", "/messages"))
        if isinstance(self.runtime.objects, LocalObjectStore):  # S3 links are presigned; local ones are served here
            app.router.routes.extend(object_routes(self.runtime.objects))
        app.router.routes.append(Route("/metrics", self.observability.metrics, methods=["GET"]))
        app.router.routes.append(Mount("/", app=rest_app(self.runtime)))
        return app


def build_gateway(settings: Settings | None = None, registry: Registry | None = None, *,
                  base_url: str | None = None) -> Gateway:
    """``base_url``: where this gateway serves ``/objects/`` (default ``PUBLIC_BASE_URL``, else
    ``http://SERVICE_HOST:SERVICE_PORT``); a stdio gateway passes its object listener's."""
    settings = settings or get_settings()
    registry = registry if registry is not None else Registry.load(settings.algo_mcp_registry)
    runtime = Runtime(settings, registry, base_url=base_url)
    observability = Observability(settings, runtime)

    @asynccontextmanager
    async def lifespan(server: FastMCP) -> AsyncIterator[dict]:
        async with runtime, observability.running():  # returns at once: the start goes on in the background
            yield {}

    mcp = mcp_server(registry, runtime, lifespan)
    mcp.middleware.insert(0, ToolCallLog(observability))  # outermost: it sees what the caller gets
    return Gateway(settings, registry, runtime, mcp, observability)


def mcp_server(registry: Registry, runtime: Runtime, lifespan: Lifespan | None = None) -> FastMCP:
    """The MCP face: a tool per entry of ``registry`` run by ``runtime``, the task tools, ``task://`` and
    ``object://``, a tool per actor method with the actor tools and ``actor://``, and the pipeline tools
    with ``pipeline://``."""
    tasks, actors = TaskTools(runtime.tasks, runtime.objects), ActorTools(runtime.actors, runtime.objects)
    pipelines = PipelineTools(runtime.pipelines, runtime.objects)
    table = ComponentTable([*algorithm_tools(registry, runtime.calls, runtime.objects), *tasks.tools(),
                            *actors.tools(), *pipelines.tools()],
                           [*tasks.templates(), *actors.templates(), *pipelines.templates()])
    mcp = FastMCP("algo-mcp", instructions=INSTRUCTIONS, lifespan=lifespan, providers=[table],
                  middleware=[NearestTool(table)], mask_error_details=True)
    # On the 2026-07-28 (sessionless) protocol the SDK checks Mcp-Param headers on every tools/call
    # against the tool's schema, running the whole tools/list unless the server hands it a lookup;
    # FastMCP 4.1 does not, so a call's cost grew with the number of tools. Ours is a dict lookup.
    mcp._mcp_server.get_tool_input_schema = table.input_schema
    return mcp


def create_server() -> FastMCP:
    """Factory for ``fastmcp run``/``fastmcp dev inspector mcp_server/app.py:create_server``."""
    return build_gateway().mcp
