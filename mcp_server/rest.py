"""The seed Ray Service's REST API (``POST /invoke/{name}``, ``/healthz``) with OpenAPI at ``/docs``.

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

from engines import deploy
from engines.client import AlgorithmClient
from engines.errors import AlgoError, UnknownAlgorithm, ValidationFailed
from engines.registry import Entry
from engines.task_queue import TASK_ID_MAX_LENGTH, TASK_ID_PATTERN, TaskQueue, TaskRef
from engines.validation import describe
from mcp_server.errors import http_error


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


def _invoke_route(client: AlgorithmClient, entry: Entry):
    async def invoke(request: Request, body: Any) -> Any:
        return await _unless_disconnected(request, client.call(entry, body))

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


def rest_app(queue: TaskQueue) -> FastAPI:
    app = FastAPI(title="algo-mcp", summary="Registered algorithms over REST (the Ray Service API)",
                  docs_url="/docs", redoc_url=None)
    client = queue.client
    registry = client.registry

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
                 )(_invoke_route(client, entry))

    @app.post("/invoke/{name}", tags=["invoke"], include_in_schema=False)
    async def unknown(name: str) -> JSONResponse:
        return http_error(UnknownAlgorithm(name, registry.names()))

    @app.post("/tasks/{name}", tags=["tasks"], summary="submit a long job; answers at once")
    async def submit_task(name: str, body: TaskSubmission) -> JSONResponse:
        record = await queue.submit(name, body.input, callback_url=body.callback_url)
        return JSONResponse(TaskRef.of(record).model_dump(), status_code=202)

    @app.get("/tasks/{task_id}", tags=["tasks"], summary="a task's record")
    async def get_task(task_id: TaskIdPath) -> dict[str, Any]:
        return (await queue.get(task_id)).public()

    @app.delete("/tasks/{task_id}", tags=["tasks"], summary="cancel a queued or running task")
    async def cancel_task(task_id: TaskIdPath) -> dict[str, Any]:
        return (await queue.cancel(task_id)).public()

    @app.get("/healthz", tags=["health"], summary="per-algorithm readiness and live workers")
    async def healthz() -> JSONResponse:
        algorithms = await asyncio.to_thread(deploy.readiness, registry, queue.config)
        ready = all(a["status"] == "RUNNING" for a in algorithms.values())
        try:
            workers = await queue.store.live_workers()
        except Exception:  # Redis down: say so rather than fail the probe
            workers, ready = [], False
        return JSONResponse({"status": "ok" if ready else "degraded", "algorithms": algorithms,
                             "workers": workers}, status_code=200 if ready else 503)

    return app
