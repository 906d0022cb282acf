"""Take the gateway's port before anything slow starts.

uvicorn binds only after the app's lifespan, and ours starts Ray and deploys
every algorithm (a minute on a small machine): a port already taken cost that
minute and then a bare "address already in use", and a port picked as free
could be taken meanwhile. Binding first fails at once, says what to change,
and holds the port from then on.
"""

from __future__ import annotations

import socket

from engines.errors import AlgoError


class CannotListen(AlgoError):
    code = "cannot_listen"


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
