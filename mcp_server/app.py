"""Assemble the gateway from the registry: a FastMCP server, plus HTTP routes for network transports.

The server's lifespan connects to Ray and deploys the algorithms (:class:`Startup`),
so the same object works under ``algo-mcp serve``, ``fastmcp run``/``dev`` and in tests.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from engines import cluster, deploy
from engines.client import AlgorithmClient
from engines.registry import Registry
from engines.settings import Settings, get_settings
from engines.task_queue import TaskQueue, object_store_config
from mcp_server.auth import BearerAuth
from mcp_server.body_limit import BodyLimit
from mcp_server.object_routes import object_routes
from mcp_server.rest import rest_app
from mcp_server.task_tools import add_task_tools
from mcp_server.tools import algorithm_tools

Lifespan = Callable[[FastMCP], AbstractAsyncContextManager[dict]]
INSTRUCTIONS = ("Each algorithm tool runs one registered algorithm on Ray Serve. Arguments are checked "
                "against the tool's schema; a 'busy' error says after how many seconds to retry. Long "
                "jobs answer at once with a task_id: follow them with wait_task (or read task://<id>).")


class Startup:
    """Ray up, the task queue running and every algorithm deployed, for as long as anyone holds it.

    Re-entrant: the CLI holds it before uvicorn starts, so a start-up failure (a missing GPU, a
    model that will not load) is its one-line message rather than a traceback from uvicorn's
    lifespan, and the lifespan inside then finds everything up. Holds nest; the outermost stops.
    """

    def __init__(self, settings: Settings, registry: Registry, queue: TaskQueue) -> None:
        self.settings, self.registry, self.queue = settings, registry, queue
        self._holders = 0

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        if self._holders:
            self._holders += 1
            try:
                yield
            finally:
                self._holders -= 1
            return
        conn = cluster.connect(self.settings)
        self._holders = 1
        try:
            async with self.queue.running(worker_id=f"gateway:{socket.gethostname()}:{os.getpid()}"):
                await deploy.deploy_all(self.registry, self.settings, self.queue.config)
                yield
        finally:
            self._holders = 0
            await cluster.disconnect(conn)


@dataclass
class Gateway:
    settings: Settings
    registry: Registry
    client: AlgorithmClient
    queue: TaskQueue
    mcp: FastMCP
    startup: Startup

    def http_app(self) -> Starlette:
        """Streamable HTTP at ``/mcp``, SSE at ``/sse``, REST beside them; one token guards all."""
        token = self.settings.mcp_auth_token
        middleware = [Middleware(BodyLimit, max_bytes=self.settings.max_request_bytes)]
        if token:
            middleware.append(Middleware(BearerAuth, token=token.get_secret_value()))
        app = self.mcp.http_app(path="/mcp", middleware=middleware)
        sse = self.mcp.http_app(transport="sse", path="/sse")
        app.router.routes.extend(r for r in sse.routes if getattr(r, "path", None) in ("/sse", "/messages"))
        objects = object_store_config(self.settings)
        if not objects.bucket:  # S3 links are presigned; local ones are served here
            app.router.routes.extend(object_routes(objects.open()))
        app.router.routes.append(Mount("/", app=rest_app(self.queue)))
        return app


def build_gateway(settings: Settings | None = None, registry: Registry | None = None) -> Gateway:
    settings = settings or get_settings()
    registry = registry if registry is not None else Registry.load(settings.algo_mcp_registry)
    client = AlgorithmClient(registry)
    queue = TaskQueue(settings, client)
    startup = Startup(settings, registry, queue)

    @asynccontextmanager
    async def lifespan(server: FastMCP) -> AsyncIterator[dict]:
        async with startup.hold():
            yield {}

    return Gateway(settings, registry, client, queue, mcp_server(queue, lifespan=lifespan), startup)


def mcp_server(queue: TaskQueue, lifespan: Lifespan | None = None) -> FastMCP:
    """The MCP face: one tool per algorithm, the task tools and the ``task://`` resource."""
    tools = algorithm_tools(queue)
    mcp = FastMCP("algo-mcp", instructions=INSTRUCTIONS, lifespan=lifespan, providers=[tools],
                  mask_error_details=True)
    # On the 2026-07-28 (sessionless) protocol the SDK checks Mcp-Param headers on every tools/call
    # against the tool's schema, running the whole tools/list unless the server hands it a lookup;
    # FastMCP 4.1 does not, so a call's cost grew with the number of tools. Ours is a dict lookup.
    mcp._mcp_server.get_tool_input_schema = tools.input_schema
    add_task_tools(mcp, queue)
    return mcp


def create_server() -> FastMCP:
    """Factory for ``fastmcp run``/``fastmcp dev inspector mcp_server/app.py:create_server``."""
    return build_gateway().mcp
