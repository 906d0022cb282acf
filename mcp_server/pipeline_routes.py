"""Pipelines over REST: ``POST /pipelines`` (the spec as the body), ``GET /pipelines``,
``GET /pipelines/{name}``, ``GET /pipelines/{name}/output``, ``DELETE /pipelines/{name}`` (stop), and
``POST /pipelines/backfills`` (a bounded range, as a task)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse

from engines.streams.backfill import BackfillSpec
from engines.streams.pipelines import Pipelines
from engines.streams.spec import PipelineSpec


def add_pipeline_routes(app: FastAPI, pipelines: Pipelines) -> None:
    @app.post("/pipelines", tags=["pipelines"], status_code=201,
              summary="start a pipeline (the same spec again changes nothing; another under its name is 409)")
    async def start(spec: PipelineSpec) -> JSONResponse:
        # the body is parsed by FastAPI into the spec; the gateway checks the rest (algorithm, topics)
        return JSONResponse(await pipelines.start(spec.model_dump(mode="json", exclude_none=True)), status_code=201)

    @app.post("/pipelines/backfills", tags=["pipelines"], status_code=202,
              summary="backfill a topic range through an algorithm, as a task (follow it at /tasks/{task_id})")
    async def backfill(spec: BackfillSpec) -> JSONResponse:
        record = await pipelines.backfill(spec.model_dump(mode="json", exclude_none=True))
        return JSONResponse({"task_id": record.task_id, "status": record.status.value}, status_code=202)

    @app.get("/pipelines", tags=["pipelines"], summary="every pipeline with its lag, rates and latency")
    async def listing() -> list[dict[str, Any]]:
        return await pipelines.list()

    @app.get("/pipelines/{name}", tags=["pipelines"], summary="a pipeline: spec, status, lag, rates, errors")
    async def inspect(name: str, dead_letters: Annotated[int, Query(ge=0, le=50)] = 10) -> dict[str, Any]:
        return await pipelines.inspect(name, dead_letters)

    @app.get("/pipelines/{name}/output", tags=["pipelines"], summary="its last output messages, newest first")
    async def peek(name: str, n: Annotated[int, Query(ge=1, le=50)] = 10) -> list[dict[str, Any]]:
        return await pipelines.peek(name, n)

    @app.delete("/pipelines/{name}", tags=["pipelines"], summary="stop a pipeline")
    async def stop(name: str) -> dict[str, Any]:
        return await pipelines.stop(name)
