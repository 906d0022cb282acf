"""The baselines: a bare FastMCP server with one ``echo`` tool, no algo-mcp.

``bare_server()`` echoes in-process (no Ray): the goal's baseline.
``bare_server(handle)`` echoes through a bare Serve deployment (:class:`ServeEcho`):
the least any MCP tool backed by Ray Serve can cost, shown for scale.

Imported by ``bench_gateway.py`` for the in-memory and HTTP runs, and run as a
script as its stdio servers: ``python bench/_bare_echo.py`` (in-process), or
with ``--serve`` to join ``RAY_ADDRESS`` and call the bench's ``ServeEcho``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from engines.serving.cluster import prepare_env
from engines.settings import Settings

prepare_env(Settings())  # Serve's request-path settings, as the gateway has them; before ray.serve

from fastmcp import FastMCP  # noqa: E402  (after prepare_env, like the gateway)
from ray import serve  # noqa: E402
from ray.serve.handle import DeploymentHandle  # noqa: E402

SERVE_ECHO_APP = "bare-serve-echo"


@serve.deployment(max_ongoing_requests=100)
class ServeEcho:
    async def __call__(self, text: str) -> dict[str, str]:
        return {"text": text}


def bare_server(handle: DeploymentHandle | None = None) -> FastMCP:
    mcp = FastMCP("bare-echo")

    @mcp.tool
    async def echo(text: str) -> dict[str, str]:
        """Send a text back unchanged."""
        return await handle.remote(text) if handle is not None else {"text": text}

    return mcp


async def _serve_echo_over_stdio() -> None:
    from engines.serving import cluster

    cluster.connect(os.environ["RAY_ADDRESS"])
    try:
        handle = serve.get_deployment_handle(ServeEcho.name, app_name=SERVE_ECHO_APP)
        await bare_server(handle).run_async("stdio", show_banner=False)
    finally:
        cluster.disconnect()


if __name__ == "__main__":
    if "--serve" in sys.argv[1:]:
        asyncio.run(_serve_echo_over_stdio())
    else:
        bare_server().run("stdio", show_banner=False)
