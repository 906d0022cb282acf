"""``algo-mcp serve --transport stdio|sse|http``: run the gateway."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from engines.errors import AlgoError
from engines.settings import get_settings

log = logging.getLogger("algo_mcp")

_STOP_GRACE_S = 2.0


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


async def _until_stopped(serve: Awaitable[None]) -> bool:
    """Serve until done, or until SIGTERM (a desktop client quitting, ``docker stop``) or Ctrl-C;
    True when a signal stopped it.

    Once Ray has started in this process, SIGTERM meets Ray's native handler, which aborts the
    process and can strand the local cluster (raylet, GCS, replicas) and the bundled Redis.
    Here both signals stop the serving instead, so the caller's start-up is undone in order.
    uvicorn handles them itself while it serves; this handler then only sees them re-raised.
    """
    serving = asyncio.ensure_future(serve)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # left in place: a second one must not abort the stop
        loop.add_signal_handler(signum, stop.set)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        serving.cancel()
        raise
    finally:
        stopping.cancel()
    if serving.done():
        serving.result()
        return False
    log.info("stopping (signal)")
    serving.cancel()
    # The stdio transport reads stdin in a thread that only a line or EOF wakes: do not wait on it.
    await asyncio.wait([serving], timeout=_STOP_GRACE_S)
    return True


async def _serve(transport: str, host: str, port: int) -> None:
    import uvicorn

    from mcp_server.app import build_gateway
    from mcp_server.listen import listening_socket

    gateway = build_gateway()
    sock = None if transport == "stdio" else listening_socket(host, port)  # before Ray: fail fast
    with sock or contextlib.nullcontext():
        # Started before serving, so a failure raises here (a message, exit 2), not in a lifespan.
        async with gateway.startup.hold():
            if sock is None:
                stopped = await _until_stopped(gateway.mcp.run_async(transport="stdio", show_banner=False))
            else:
                config = uvicorn.Config(gateway.http_app(), host=host, port=port,
                                        log_level=gateway.settings.log_level.lower(), lifespan="on")
                log.info("algo-mcp on http://%s:%d (MCP at /mcp, SSE at /sse, REST docs at /docs)", host, port)
                stopped = await _until_stopped(uvicorn.Server(config).serve(sockets=[sock]))
    if stopped:  # all is shut down; a stdin reader blocked in read() would hold the exit forever
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        logging.shutdown()
        os._exit(0)


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
