"""``algo-mcp serve --transport stdio|sse|http``: run the gateway."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable

from engines.errors import AlgoError
from engines.settings import get_settings

log = logging.getLogger("algo_mcp")


def _protect_stdout() -> None:
    """Under stdio only protocol may reach stdout: point fd 1 at stderr, keep the real one for MCP.

    Ray and native libraries write to fd 1 directly; after this they land in
    stderr, and ``sys.stdout`` (which the MCP stdio transport uses) is the
    original pipe.
    """
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it exists (not on Windows): every tool call is event-loop work end to end
    (MCP framing, the Serve router in this process, Redis), and uvloop does it faster."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _parser() -> argparse.ArgumentParser:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="algo-mcp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the MCP gateway")
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio",
                       help="stdio for desktop clients; sse or http serve /sse, /mcp and REST on one port")
    serve.add_argument("--host", default=settings.service_host)
    serve.add_argument("--port", type=int, default=settings.service_port)
    return parser


async def _serve(transport: str, host: str, port: int) -> None:
    import uvicorn

    from mcp_server.app import build_gateway
    from mcp_server.listen import listening_socket

    gateway = build_gateway()
    if transport == "stdio":
        await gateway.mcp.run_async(transport="stdio", show_banner=False)
        return
    sock = listening_socket(host, port)  # now, not after Ray has started: fail fast
    config = uvicorn.Config(gateway.http_app(), host=host, port=port,
                            log_level=gateway.settings.log_level.lower(), lifespan="on")
    # Started before uvicorn, so a failure raises here (a message, exit 2), not in its lifespan.
    with sock:
        async with gateway.startup.hold():
            log.info("algo-mcp on http://%s:%d (MCP at /mcp, SSE at /sse, REST docs at /docs)", host, port)
            await uvicorn.Server(config).serve(sockets=[sock])


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    if args.transport == "stdio":
        _protect_stdout()
    logging.basicConfig(stream=sys.stderr, level=get_settings().log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(args.transport, args.host, args.port))
    except AlgoError as err:  # a wrong registry entry, a missing GPU: say what, not a traceback
        print(f"algo-mcp: {err.message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
