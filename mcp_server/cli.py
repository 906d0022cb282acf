"""``algo-mcp serve --transport stdio|sse|http``: run the gateway; ``algo-mcp cluster``: its local cluster."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable

from engines.collector import collect_on_schedule
from engines.errors import AlgoError
from engines.settings import Settings, get_settings

log = logging.getLogger("algo_mcp")

_STOP_GRACE_S = 2.0
_WILDCARDS = ("0.0.0.0", "::", "")


def _protect_stdout() -> None:
    """Under stdio only protocol may reach stdout: point fd 1 at stderr, keep the real one for MCP.

    Libraries that write to fd 1 directly land in stderr after this, and
    ``sys.stdout`` (which the MCP stdio transport uses) is the original pipe.
    (Ray's processes run under the local cluster's keeper, whose output goes to
    its log, so nothing of theirs can reach it either.)
    """
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(protocol_fd, "w", encoding="utf-8", buffering=1)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it exists (not on Windows): every tool call is event-loop work end to end
    (MCP framing, the Serve router in this process, Redis), and uvloop does it faster."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="algo-mcp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the MCP gateway")
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio",
                       help="stdio for desktop clients; sse or http serve /sse, /mcp and REST on one port")
    serve.add_argument("--host", default=settings.service_host)
    serve.add_argument("--port", type=int, default=settings.service_port)
    cluster = sub.add_parser("cluster", help="the local Ray and Redis gateways on this DATA_DIR share")
    cluster.add_argument("action", choices=["status", "stop"],
                         help="status: what runs (JSON); stop: stop it now, even if gateways use it")
    return parser


async def _until_stopped(serve: Awaitable[None]) -> bool:
    """Serve until done, or until SIGTERM (a desktop client quitting, ``docker stop``) or Ctrl-C;
    True when a signal stopped it.

    Both signals stop the serving, so the caller's start-up is undone in order (the runtime
    leaves Ray and Redis to the keeper). uvicorn handles them itself while it serves; this
    handler then only sees them re-raised.
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


async def _serve_stdio(settings: Settings) -> bool:
    from mcp_server.app import build_gateway
    from mcp_server.object_listener import ObjectListener, base_url, object_socket
    from storage.objects import LocalObjectStore

    local = not settings.s3_bucket
    sock = object_socket() if local else None  # its port goes into the links: taken first
    gateway = build_gateway(settings, base_url=base_url(sock) if sock else None)
    serving = gateway.mcp.run_async(transport="stdio", show_banner=False)
    if sock is None:
        return await _until_stopped(serving)
    assert isinstance(gateway.runtime.objects, LocalObjectStore)
    with ObjectListener(sock, gateway.runtime.objects):
        return await _until_stopped(serving)


async def _serve_http(settings: Settings, host: str, port: int) -> bool:
    import uvicorn

    from mcp_server.app import build_gateway
    from mcp_server.listen import listening_socket

    with listening_socket(host, port) as sock:  # before anything else: a taken port fails at once
        bound = sock.getsockname()[1]
        link_host = "127.0.0.1" if host in _WILDCARDS else (f"[{host}]" if ":" in host else host)
        gateway = build_gateway(settings, base_url=f"http://{link_host}:{bound}")
        config = uvicorn.Config(gateway.http_app(), log_level=settings.log_level.lower(), lifespan="on")
        log.info("algo-mcp on http://%s:%d (MCP at /mcp, SSE at /sse, REST docs at /docs)", host, bound)
        return await _until_stopped(uvicorn.Server(config).serve(sockets=[sock]))


async def _serve(settings: Settings, transport: str, host: str, port: int) -> None:
    stopped = await (_serve_stdio(settings) if transport == "stdio" else _serve_http(settings, host, port))
    if stopped:  # all is shut down; a stdin reader blocked in read() would hold the exit forever
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        logging.shutdown()
        os._exit(0)


def _cluster(settings: Settings, action: str) -> None:
    from engines import local_cluster

    if action == "status":
        state = local_cluster.current(settings.data_dir)
        report = {"data_dir": str(settings.data_dir), "running": state is not None,
                  **({"keeper": vars(state), "in_use": local_cluster.in_use(settings.data_dir)} if state else {})}
        print(json.dumps(report, indent=2))
        return
    state = local_cluster.stop(settings.data_dir)
    print(f"stopped the local cluster of {settings.data_dir}" if state else
          f"no local cluster runs for {settings.data_dir}")


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    args = _parser(settings).parse_args(argv)
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    if args.command == "serve" and args.transport == "stdio":
        _protect_stdout()
    logging.basicConfig(stream=sys.stderr, level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from engines.serving.cluster import prepare_env

    prepare_env(settings)  # before anything imports Ray
    try:
        if args.command == "cluster":
            _cluster(settings, args.action)
            return
        collect_on_schedule()  # no full garbage collection pausing the gateway under load
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_serve(settings, args.transport, args.host, args.port))
    except AlgoError as err:  # a wrong registry entry, a taken port: say what, not a traceback
        print(f"algo-mcp: {err.message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
