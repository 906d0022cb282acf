"""Bearer-token guard for every HTTP route but ``/healthz``, signed ``/objects/`` links and the
console's page.

Pure ASGI rather than ``BaseHTTPMiddleware`` so SSE streams pass through
untouched. The scheme is case-insensitive (RFC 6750); the token comparison is constant-time.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from engines.errors import Unauthorized
from mcp_server.errors import http_error

OPEN_PATHS = frozenset({"/healthz", "/console"})  # the console's page holds no data; its requests carry the token
OPEN_PREFIXES = ("/objects/", "/console/")  # signed links: the signature is the credential; the console's script


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if path and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
            given = dict(scope["headers"]).get(b"authorization", b"")
            scheme, _, token = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._expected):
                problem = "missing bearer token" if not given else "invalid bearer token"
                response = http_error(Unauthorized(problem), {"WWW-Authenticate": 'Bearer realm="algo-mcp"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
