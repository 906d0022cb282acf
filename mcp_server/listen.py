"""Take the gateway's port before anything slow starts.

A port already taken fails at once (exit 2, with what to change) before anything
starts, and a port picked as free cannot be taken (say, by a Serve replica's
gRPC server) between picking and serving: the gateway holds it from then on.
"""

from __future__ import annotations

import socket

from engines.errors import CannotListen


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (``port`` 0: any free one), for
    ``uvicorn.Server.serve(sockets=…)``."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: no wait out of TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CannotListen(f"cannot listen on {host}:{port} ({exc.strerror}); "
                           "choose another with --port or SERVICE_PORT") from None
    # Listening already is what holds the port (a socket only bound still lets others bind it
    # with SO_REUSEADDR); connections made before the server is up wait in the backlog.
    sock.listen(2048)
    return sock
