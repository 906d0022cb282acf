"""The operator's console at ``/console``, and the JSON routes it reads beside the REST API.

The page and its script hold no data, so they are served without the token
(``mcp_server.auth`` leaves ``/console`` open); every request they make carries
``Authorization: Bearer <token>``, asked for once and kept in the tab's
sessionStorage. The page polls: ``/algorithms`` (registry entries as they run
now, with their input schemas for the try-it form), ``/tasks``, ``/actors``,
``/pipelines``, ``/healthz`` (Serve status, replicas, live workers) and
``/metrics`` when the gateway has it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Annotated, Any

from fastapi import FastAPI, Query
from starlette.responses import HTMLResponse, Response

from engines.algorithms.registry import Entry
from engines.runtime import Runtime
from storage import TaskRecord

NO_CACHE = {"Cache-Control": "no-cache"}  # a new version shows on the next load
PAGE_FILES = {"console.js": "text/javascript", "console.css": "text/css"}
#: the listing leaves out what can be large; GET /tasks/{task_id} has it all
LISTED_WITHOUT = frozenset({"payload", "result"})
#: the registry fields an operator sees (and may change with PATCH /admin/algorithms/{name})
SETTINGS = {"mode", "kind", "num_workers", "max_queued", "batch", "autoscaling", "timeout_s", "num_cpus", "num_gpus"}


def _asset(name: str) -> str:
    return (files("mcp_server") / "console" / name).read_text(encoding="utf-8")


def _static(body: str, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def asset() -> Response:
        return Response(body, media_type=media_type, headers=NO_CACHE)

    return asset


def _algorithm(entry: Entry, default_concurrency: int) -> dict[str, Any]:
    spec = entry.spec
    return {"name": spec.name, "title": spec.display_title, "description": spec.description,
            **spec.model_dump(mode="json", include=SETTINGS),
            "max_concurrency": spec.concurrency(default_concurrency),
            "input_schema": entry.cls.Input.model_json_schema()}


def _listed(record: TaskRecord) -> dict[str, Any]:
    return {k: v for k, v in record.public().items() if k not in LISTED_WITHOUT}


def add_console_routes(app: FastAPI, runtime: Runtime) -> None:
    settings = runtime.settings
    # the page says whether to ask for a token; it holds nothing else from the server
    page = _asset("index.html").replace("{{auth}}", "bearer" if settings.mcp_auth_token else "none")

    @app.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(page, headers=NO_CACHE)

    for name, media_type in PAGE_FILES.items():
        app.get(f"/console/{name}", include_in_schema=False)(_static(_asset(name), media_type))

    @app.get("/algorithms", tags=["console"], summary="every algorithm: mode, limits as they run now, input schema")
    async def algorithms() -> list[dict[str, Any]]:
        return [_algorithm(entry, settings.default_max_concurrency) for entry in runtime.registry]

    @app.get("/tasks", tags=["tasks"], summary="recent tasks, newest first (without payload and result)")
    async def recent_tasks(status: Annotated[str | None, Query(description="only this status")] = None,
                           algorithm: Annotated[str | None, Query(description="only this algorithm")] = None,
                           limit: Annotated[int, Query(ge=1, le=200)] = 50) -> dict[str, Any]:
        return {"tasks": [_listed(r) for r in await runtime.tasks.recent(status or None, algorithm or None, limit)]}

    @app.get("/actors", tags=["actors"], summary="the actor templates and the newest bound actors")
    async def actors(template: Annotated[str | None, Query(description="only this template")] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
        templates = [{"name": t.name, "description": t.description, "methods": list(t.methods)}
                     for t in runtime.actors.templates.values()]
        if not templates:
            return {"templates": [], "bound": 0, "actors": []}
        return {"templates": templates, "bound": await runtime.actors.store.count(),
                "actors": [r.public() for r in await runtime.actors.recent(template or None, limit)]}
