"""A stdio gateway has no HTTP face, so a small loopback listener serves its local output links.

It runs uvicorn in a thread of its own (its own event loop, no signal handling:
the gateway's stop stays in charge) on a port the OS picks, and serves only the
signed ``/objects/`` links, so a link in a tool answer opens in a browser.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType

import uvicorn

from mcp_server.listen import listening_socket
from mcp_server.object_routes import objects_app
from storage.objects import LocalObjectStore

HOST = "127.0.0.1"
_STOP_S = 5.0


def object_socket() -> socket.socket:
    """The listener's socket, taken first: its port goes into every link the gateway makes."""
    return listening_socket(HOST, 0)


def base_url(sock: socket.socket) -> str:
    return f"http://{HOST}:{sock.getsockname()[1]}"


class ObjectListener:
    """Serves ``store``'s signed links on ``sock`` while entered."""

    def __init__(self, sock: socket.socket, store: LocalObjectStore) -> None:
        config = uvicorn.Config(objects_app(store), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._thread = threading.Thread(target=lambda: asyncio.run(self._server.serve(sockets=[sock])),
                                        name="algo-mcp-objects", daemon=True)

    def __enter__(self) -> ObjectListener:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.should_exit = True
        self._thread.join(_STOP_S)
        self._sock.close()
