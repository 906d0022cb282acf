"""Operators' routes: an algorithm's limits, read and changed while it runs (``engines.limits``).

``GET /admin/algorithms/{name}`` (the file's limits, the current ones, the last
changes), ``PATCH /admin/algorithms/{name}`` (change some), ``DELETE
/admin/algorithms/{name}/limits`` (back to the file). Changes need the
gateway's token; a gateway without one takes them only from its own machine.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import FastAPI, Request

from engines.errors import Forbidden
from engines.limits import LimitChange, Limits


def _caller(request: Request, token_set: bool) -> str:
    """Who changes limits, for the log; without a token only a loopback caller may."""
    host = request.client.host if request.client else "unknown"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not token_set and not loopback:
        raise Forbidden("changing limits needs MCP_AUTH_TOKEN set on the gateway (or a call from its own machine)")
    return host


def add_admin_routes(app: FastAPI, limits: Limits, *, token_set: bool) -> None:
    @app.get("/admin/algorithms/{name}", tags=["admin"],
             summary="an algorithm's limits: the registry file's, the current ones, the last changes")
    async def describe(name: str) -> dict[str, Any]:
        return await limits.describe(name)

    @app.patch("/admin/algorithms/{name}", tags=["admin"],
               summary="change an algorithm's limits while it runs (calls in flight finish; kept across restarts)")
    async def change(name: str, body: LimitChange, request: Request) -> dict[str, Any]:
        return await limits.change(name, body, by=_caller(request, token_set))

    @app.delete("/admin/algorithms/{name}/limits", tags=["admin"], summary="back to the registry file's limits")
    async def reset(name: str, request: Request) -> dict[str, Any]:
        return await limits.reset(name, by=_caller(request, token_set))
