"""Pipelines over MCP: start, stop, list, inspect and peek tools, and ``pipeline://{name}``.

``pipeline_start`` takes the spec's fields flat, with the spec's own schema, so
an agent can start one from a sentence ("run text-embedding over topic reviews
into reviews-vec"): name, input_topic, algorithm and output_topic are all it
needs; the rest has defaults. ``pipeline_backfill`` takes the same fields and a
range, and answers with a task to follow.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastmcp.resources import ResourceTemplate
from fastmcp.tools import Tool, ToolResult
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field, PrivateAttr

from engines.errors import AlgoError
from engines.streams.backfill import BackfillSpec
from engines.streams.pipelines import Pipelines
from engines.streams.spec import PipelineSpec
from mcp_server.answers import answer
from mcp_server.errors import resource_error, tool_error
from mcp_server.tools import TaskRef
from storage.objects import ObjectStore

PipelineName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_-]{0,63}$",
                                    description="the pipeline's name", examples=["reviews-vec"])]
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


async def _answer(work: Awaitable[Any]) -> ToolResult:
    try:
        found = await work
    except AlgoError as err:
        return tool_error(err)
    body = found if isinstance(found, dict) else {"items": found}
    return ToolResult(content=json.dumps(body), structured_content=body)


class SpecTool(Tool):
    """A tool whose arguments are a spec's fields, flat, with the spec's own schema."""

    _action: Callable[[dict[str, Any]], Awaitable[ToolResult]] = PrivateAttr()

    @classmethod
    def of(cls, name: str, title: str, description: str, model: type[BaseModel],
           action: Callable[[dict[str, Any]], Awaitable[ToolResult]], annotations: ToolAnnotations) -> SpecTool:
        schema = copy.deepcopy(model.model_json_schema())
        schema.pop("title", None)
        tool = cls(name=name, title=title, description=description, parameters=schema, annotations=annotations)
        tool._action = action
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return await self._action(arguments)


class PipelineTools:
    def __init__(self, pipelines: Pipelines, objects: ObjectStore) -> None:
        self.pipelines, self.objects = pipelines, objects

    def tools(self) -> list[Tool]:
        start = SpecTool.of(
            "pipeline_start", "Start a stream pipeline",
            "Run a registered algorithm over a Kafka topic into another topic, at least once and in order per "
            "partition, until pipeline_stop. Needs name, input_topic, algorithm and output_topic; the input topic "
            "must exist (the output and dead-letter topics are created). Starting the same spec again changes "
            "nothing.", PipelineSpec, lambda arguments: _answer(self.pipelines.start(arguments)),
            ToolAnnotations(idempotent_hint=True, open_world_hint=True))
        backfill = SpecTool.of(
            "pipeline_backfill", "Backfill a topic range through an algorithm",
            "Run a registered algorithm once over a bounded range of a Kafka topic (start and end: offsets, ISO "
            "times, earliest/latest) into another topic, as a task with progress: answers at once with a task_id "
            "to follow with wait_task. Needs name, input_topic, algorithm and output_topic.",
            BackfillSpec, self._backfill, ToolAnnotations(open_world_hint=True))
        return [start, backfill,
                Tool.from_function(self.pipeline_stop, title="Stop a stream pipeline",
                                   annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True)),
                Tool.from_function(self.pipeline_list, title="List stream pipelines", annotations=READ_ONLY),
                Tool.from_function(self.pipeline_get, title="Inspect a stream pipeline", annotations=READ_ONLY),
                Tool.from_function(self.pipeline_peek, title="Peek at a pipeline's output", annotations=READ_ONLY)]

    def templates(self) -> list[ResourceTemplate]:
        return [ResourceTemplate.from_function(
            self.pipeline_resource, "pipeline://{name}", name="pipeline", title="A stream pipeline",
            mime_type="application/json", description="A pipeline's spec, status, lag, rates, latency and errors.")]

    async def _backfill(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            record = await self.pipelines.backfill(arguments)
        except AlgoError as err:
            return tool_error(err)
        return await answer(TaskRef.of(record).model_dump(), self.objects, task=True)

    async def pipeline_stop(self, name: PipelineName) -> ToolResult:
        """Stop a pipeline: its consumers finish their batch and leave the group; what they committed stays."""
        return await _answer(self.pipelines.stop(name))

    async def pipeline_list(self) -> ToolResult:
        """Every pipeline, running or stopped, with its lag, rates and latency."""
        return await _answer(self.pipelines.list())

    async def pipeline_get(
            self, name: PipelineName,
            dead_letters: Annotated[int, Field(ge=0, le=50, description="the last dead letters to include")] = 10,
    ) -> ToolResult:
        """A pipeline's spec and status, lag per partition, rates, p50/p99 latency, errors and last dead letters."""
        return await _answer(self.pipelines.inspect(name, dead_letters))

    async def pipeline_peek(
            self, name: PipelineName,
            n: Annotated[int, Field(ge=1, le=50, description="how many of the last output messages")] = 5,
    ) -> ToolResult:
        """The last messages a pipeline wrote to its output topic, newest first."""
        return await _answer(self.pipelines.peek(name, n))

    async def pipeline_resource(self, name: str) -> str:
        try:
            return json.dumps(await self.pipelines.inspect(name))
        except AlgoError as err:
            raise resource_error(err) from None
