"""The seed Ray Service's REST API, unchanged, with OpenAPI at ``/docs``.

``POST /invoke/{name}`` and ``POST /tasks/{name}`` take the algorithm's input as
the body (a task's ``callback_url`` is a query parameter); ``/invoke`` answers
``{task_id, status, result}`` and is recorded like a task; ``GET /tasks/{id}``
is the record, polled until ``status`` is ``completed`` or ``failed``. One typed
route per algorithm, so ``/docs`` shows each body and answer schema; errors use
the same wording and codes as the MCP tools.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from engines.algorithms.registry import Entry
from engines.algorithms.validation import describe
from engines.calls import Calls
from engines.errors import AlgoError, UnknownAlgorithm, ValidationFailed
from engines.runtime import Runtime
from engines.tasks.queue import TASK_ID_MAX_LENGTH, TASK_ID_PATTERN
from mcp_server.actor_routes import add_actor_routes
from mcp_server.admin_routes import add_admin_routes
from mcp_server.console_routes import add_console_routes
from mcp_server.errors import http_error
from mcp_server.pipeline_routes import add_pipeline_routes
from storage import TaskStatus


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Any) -> Any:
    """Run ``work``, cancelling it (and so the Serve request) if the client goes away."""
    call = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_until_disconnected(request))
    try:
        await asyncio.wait({call, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not call.done():
            call.cancel()
    return await call


def _typed(entry: Entry, route: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``route(request, body, **query)`` with the body typed as the algorithm's input, for FastAPI
    (validation, ``/docs``)."""
    params = [p for p in inspect.signature(route).parameters.values() if p.name not in ("request", "body")]
    route.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=entry.cls.Input),
        *params,
    ])
    return route


def _invoke_route(calls: Calls, entry: Entry) -> Callable[..., Awaitable[Any]]:
    async def invoke(request: Request, body: Any) -> dict[str, Any]:
        done = await _unless_disconnected(request, calls.invoke_recorded(entry.name, body))
        return {"task_id": done.task_id, "status": TaskStatus.COMPLETED.value, "result": done.result}

    return _typed(entry, invoke)


CallbackUrl = Annotated[str | None, Query(description="receives the final task record (POST, JSON, signed "
                                                      "X-Algo-MCP-Signature when CALLBACK_SECRET is set)")]


ResultTopic = Annotated[str | None, Query(description="a Kafka topic on the gateway's broker that receives the final "
                                                      "task record (JSON, keyed by task_id)")]


def _submit_route(calls: Calls, entry: Entry) -> Callable[..., Awaitable[Any]]:
    async def submit(request: Request, body: Any, callback_url: CallbackUrl = None,
                     result_topic: ResultTopic = None) -> JSONResponse:
        record = await calls.submit(entry.name, body, callback_url=callback_url, result_topic=result_topic)
        return JSONResponse({"task_id": record.task_id, "status": record.status.value}, status_code=202)

    return _typed(entry, submit)


def _invoked_model(entry: Entry) -> type[BaseModel]:
    """``/invoke``'s answer for ``entry``, for ``/docs``."""
    return create_model(f"{entry.cls.Output.__name__}Invoked",
                        task_id=(str | None, Field(description="the call's task record (GET /tasks/{task_id}); "
                                                               "null when it could not be recorded")),
                        status=(str, Field(description="completed")),
                        result=(entry.cls.Output, Field(description="the algorithm's output")))


class Submitted(BaseModel):
    task_id: str = Field(description="poll GET /tasks/{task_id} until status is completed or failed")
    status: str = Field(description="queued")


TaskIdPath = Annotated[str, Path(min_length=1, max_length=TASK_ID_MAX_LENGTH, pattern=TASK_ID_PATTERN,
                                 description="the task_id a long job returned")]
FASTAPI_PARSE_ERROR = "There was an error parsing the body"
BODY_UNPARSABLE = "body: could not be parsed as JSON (malformed, or nested too deeply)"


def _body_problems(err: RequestValidationError) -> list[str]:
    """``field: rule`` lines for a body; JSON that does not parse is named as such, with where."""
    problems, fields = [], []
    for e in err.errors():
        if e["type"] == "json_invalid":
            problems.append(f"body: not valid JSON ({e['ctx']['error']} at character {e['loc'][-1]})")
        else:
            fields.append({**e, "loc": tuple(e["loc"])[1:]})  # drop the "body" prefix
    return problems + describe(fields)


def rest_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="algo-mcp", summary="Registered algorithms over REST (the Ray Service API)",
                  docs_url="/docs", redoc_url=None)
    registry, calls, tasks = runtime.registry, runtime.calls, runtime.tasks

    @app.exception_handler(AlgoError)
    async def _algo_error(request: Request, err: AlgoError) -> JSONResponse:
        return http_error(err)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        face, _, name = request.url.path.rpartition("/")
        if request.method == "POST" and face in ("/invoke", "/tasks") and name in registry.names():
            calls.metrics.count(name, "invalid")  # FastAPI checked the body before the route could call
        return http_error(ValidationFailed(_body_problems(err)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own refusals (a body it cannot parse at all) in the same shape as ours."""
        message = BODY_UNPARSABLE if err.detail == FASTAPI_PARSE_ERROR else str(err.detail)
        return JSONResponse({"error": {"type": "bad_request" if err.status_code == 400 else "http_error",
                                       "message": message}}, status_code=err.status_code, headers=err.headers)

    add_actor_routes(app, runtime.actors)
    add_pipeline_routes(app, runtime.pipelines)
    add_admin_routes(app, runtime.limits, token_set=runtime.settings.mcp_auth_token is not None)
    add_console_routes(app, runtime)
    refusals = {429: {"description": "busy, retry after (Retry-After)"},
                503: {"description": "starting or unavailable, retry after (Retry-After)"}}
    for entry in registry:
        app.post(f"/invoke/{entry.name}", name=f"invoke {entry.name}", tags=["invoke"],
                 summary=entry.spec.description or None, response_model=None,
                 responses={200: {"model": _invoked_model(entry)}, **refusals})(_invoke_route(calls, entry))
        app.post(f"/tasks/{entry.name}", name=f"submit {entry.name}", tags=["tasks"],
                 summary=f"submit a {entry.name} task; answers at once", response_model=None, status_code=202,
                 responses={202: {"model": Submitted}, **refusals})(_submit_route(calls, entry))

    @app.post("/invoke/{name}", tags=["invoke"], include_in_schema=False)
    @app.post("/tasks/{name}", tags=["tasks"], include_in_schema=False)
    async def unknown(name: str) -> JSONResponse:
        return http_error(UnknownAlgorithm(name, registry.names()))

    @app.get("/tasks/{task_id}", tags=["tasks"], summary="a task's record")
    async def get_task(task_id: TaskIdPath) -> dict[str, Any]:
        return (await tasks.get(task_id)).public()

    @app.delete("/tasks/{task_id}", tags=["tasks"], summary="cancel a queued or running task")
    async def cancel_task(task_id: TaskIdPath) -> dict[str, Any]:
        return (await tasks.cancel(task_id)).public()

    @app.get("/healthz", tags=["health"], summary="readiness of every part, live workers")
    async def healthz() -> JSONResponse:
        """``starting`` (503) until start-up is over; then ``ok`` (200) or ``degraded`` (503)."""
        body = await runtime.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    return app
