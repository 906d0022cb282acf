"""Bearer-token guard for every HTTP route but ``/healthz``: MCP (``/mcp``, ``/sse``) and REST alike.

Pure ASGI rather than ``BaseHTTPMiddleware`` so SSE streams pass through
untouched. The comparison is constant-time.
"""

from __future__ import annotations

import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})


class BearerAuth:
    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self._expected):
                problem = "missing bearer token" if not given else "invalid bearer token"
                response = JSONResponse(
                    {"error": {"type": "unauthorized", "message": problem}}, status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="algo-mcp"'})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
