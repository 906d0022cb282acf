"""``GET /objects/{key}``: the gateway serves the local store's signed links.

The signature is the only credential (links go to agents and browsers that
hold no bearer token), so it is checked before the store is touched: an
unsigned caller cannot even learn whether a key exists. Only the local store
needs this; S3 links are presigned and go straight to the bucket.
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engines.errors import Forbidden, NotFound
from mcp_server.errors import http_error
from storage.objects import LocalObjectStore, ObjectNotFound

# stored bytes are whatever an algorithm wrote; never let a browser run them as our origin's page
_SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"}


def object_routes(store: LocalObjectStore) -> list[Route]:
    async def get_object(request: Request) -> Response:
        key = request.path_params["key"]
        expires, sig = request.query_params.get("expires"), request.query_params.get("sig")
        if expires is None or sig is None:
            return http_error(Forbidden("this link is not signed; ask for the output's link again"), _SAFE_HEADERS)
        if not store.verify(key, expires, sig):
            return http_error(Forbidden("this link is expired or was altered; ask for the output's link again"),
                              _SAFE_HEADERS)
        try:
            data, content_type = await store.get(key)
        except ObjectNotFound:
            return http_error(NotFound(f"no object stored under {key!r}"), _SAFE_HEADERS)
        max_age = max(0, min(300, int(expires) - int(time.time())))  # never cached past the link's life
        headers = {**_SAFE_HEADERS, "Cache-Control": f"private, max-age={max_age}"}
        return Response(data, media_type=content_type, headers=headers)

    return [Route("/objects/{key:path}", get_object, methods=["GET", "HEAD"], name="get_object")]


def objects_app(store: LocalObjectStore) -> Starlette:
    """The signed links alone, for a stdio gateway's loopback listener (it has no HTTP face)."""
    return Starlette(routes=object_routes(store))
