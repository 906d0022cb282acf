"""The seed Ray Service's REST API (``POST /invoke/{name}``, tasks, ``/healthz``) with OpenAPI at ``/docs``.

One typed route per algorithm, so ``/docs`` shows each body and answer
schema; errors use the same wording and codes as the MCP tools.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated, Any

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from engines.algorithms.registry import Entry
from engines.algorithms.validation import describe
from engines.calls import Calls
from engines.errors import AlgoError, UnknownAlgorithm, ValidationFailed
from engines.runtime import Runtime
from engines.tasks.queue import TASK_ID_MAX_LENGTH, TASK_ID_PATTERN
from mcp_server.errors import http_error
from mcp_server.tools import TaskRef


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


def _invoke_route(calls: Calls, entry: Entry):
    async def invoke(request: Request, body: Any) -> Any:
        return await _unless_disconnected(request, calls.invoke(entry.name, body))

    invoke.__signature__ = inspect.Signature([
        inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
        inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=entry.cls.Input),
    ])
    return invoke


class TaskSubmission(BaseModel):
    """The seed's submit body: the algorithm's input, and where to POST the final record."""

    input: dict[str, Any] = Field(description="the algorithm's input, as for /invoke/{name}")
    callback_url: str | None = Field(None, description="receives the final task record, HMAC-signed")


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
        return http_error(ValidationFailed(_body_problems(err)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        """FastAPI's own refusals (a body it cannot parse at all) in the same shape as ours."""
        message = BODY_UNPARSABLE if err.detail == FASTAPI_PARSE_ERROR else str(err.detail)
        return JSONResponse({"error": {"type": "bad_request" if err.status_code == 400 else "http_error",
                                       "message": message}}, status_code=err.status_code, headers=err.headers)

    for entry in registry:
        app.post(f"/invoke/{entry.name}", name=f"invoke {entry.name}", tags=["invoke"],
                 summary=entry.spec.description or None,
                 response_model=None, responses={200: {"model": entry.cls.Output},
                                                 429: {"description": "busy, retry after"}},
                 )(_invoke_route(calls, entry))

    @app.post("/invoke/{name}", tags=["invoke"], include_in_schema=False)
    async def unknown(name: str) -> JSONResponse:
        return http_error(UnknownAlgorithm(name, registry.names()))

    @app.post("/tasks/{name}", tags=["tasks"], summary="submit a long job; answers at once")
    async def submit_task(name: str, body: TaskSubmission) -> JSONResponse:
        record = await tasks.submit(name, body.input, callback_url=body.callback_url)
        return JSONResponse(TaskRef.of(record).model_dump(), status_code=202)

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
