"""Registry entries → MCP tools, in one place; no per-algorithm MCP code.

Each tool publishes its algorithm's pydantic input and output schemas
verbatim (descriptions, examples, limits) and validates arguments itself, so a
bad call is an error naming the field and the rule before anything reaches
Ray. The entry's ``mode`` decides the answer (``engines.calls``): the result
(sync), a task reference at once (async), or the result if it is ready within
the sync budget and a task reference otherwise (auto). Tools are served from a
dict so a call costs the same with 5 or 500 algorithms registered.
"""

from __future__ import annotations

import time
from typing import Any

from fastmcp.exceptions import NotFoundError
from fastmcp.resources import ResourceTemplate
from fastmcp.server.dependencies import get_context
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.providers import Provider
from fastmcp.tools import Tool, ToolResult
from mcp_types import CallToolRequestParams, ToolAnnotations
from pydantic import BaseModel, Field, PrivateAttr, TypeAdapter

from engines.algorithms.registry import Entry, Registry
from engines.calls import Answered, Calls
from engines.errors import AlgoError, UnknownTool
from engines.readiness import Progress
from mcp_server.answers import answer
from mcp_server.errors import tool_error
from storage import TaskRecord
from storage.objects import ObjectStore

POLL_AFTER_S = 2.0


class TaskRef(BaseModel):
    """What a long job returns at once: where to follow it (its text says which tool to call)."""

    task_id: str = Field(description="the task's id")
    status: str = Field(description="queued, running, completed, failed or cancelled")
    resource: str = Field(description="MCP resource with the task record, task://<id>")
    poll_after_s: float = Field(description="a sensible delay before asking again (or call wait_task)")

    @classmethod
    def of(cls, record: TaskRecord) -> TaskRef:
        return cls(task_id=record.task_id, status=record.status.value,
                   resource=f"task://{record.task_id}", poll_after_s=POLL_AFTER_S)


def _output_schema(entry: Entry) -> dict[str, Any]:
    output = entry.cls.Output
    if entry.spec.mode == "sync":
        return output.model_json_schema()
    if entry.spec.mode == "async":
        return TaskRef.model_json_schema()
    return {"type": "object", **TypeAdapter(output | TaskRef).json_schema()}


def progress_notifier() -> Progress | None:
    """Progress notifications for the current call (sent only if the client asked, with a token)."""
    try:
        ctx = get_context()
    except RuntimeError:
        return None
    began = time.monotonic()

    async def notify(message: str) -> None:
        await ctx.report_progress(round(time.monotonic() - began, 3), None, message)  # seconds waited: increasing

    return notify


class AlgorithmTool(Tool):
    """An MCP tool that runs one algorithm (``engines.calls``)."""

    _calls: Calls = PrivateAttr()
    _objects: ObjectStore = PrivateAttr()

    @classmethod
    def from_entry(cls, entry: Entry, calls: Calls, objects: ObjectStore) -> AlgorithmTool:
        algo = entry.cls
        tool = cls(
            name=entry.name,
            title=entry.spec.display_title,
            description=entry.spec.description or (algo.__doc__ or entry.name).strip(),
            parameters=algo.Input.model_json_schema(),
            output_schema=_output_schema(entry),
            annotations=ToolAnnotations(
                read_only_hint=algo.read_only,
                idempotent_hint=algo.idempotent,
                open_world_hint=entry.spec.kind == "external",
            ),
        )
        tool._calls, tool._objects = calls, objects
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            outcome = await self._calls.run(self.name, arguments, progress_notifier())
        except AlgoError as err:
            return tool_error(err)
        if isinstance(outcome, Answered):
            return await answer(outcome.result, self._objects)
        return await answer(TaskRef.of(outcome.record).model_dump(), self._objects, task=True)


class ComponentTable(Provider):
    """Every tool and resource template of the gateway, by name: O(1) lookup where FastMCP's
    default provider scans every tool per call."""

    def __init__(self, tools: list[Tool], templates: list[ResourceTemplate]) -> None:
        super().__init__()
        self._tools = {t.name: t for t in tools}
        self._templates = templates

    async def _list_tools(self) -> list[Tool]:
        return list(self._tools.values())

    async def _get_tool(self, name: str, version: Any = None) -> Tool | None:
        return self._tools.get(name)

    async def _list_resource_templates(self) -> list[ResourceTemplate]:
        return self._templates

    def input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._tools.get(name)
        return tool.parameters if tool else None

    def names(self) -> list[str]:
        return list(self._tools)


class NearestTool(Middleware):
    """A call to a tool nobody registered (``text-embeddings``) is answered with the closest names
    (``text-embedding``), as a tool error a model can act on, not FastMCP's bare "Unknown tool"."""

    def __init__(self, table: ComponentTable) -> None:
        self.table = table

    async def on_call_tool(self, context: MiddlewareContext[CallToolRequestParams],
                           call_next: CallNext[CallToolRequestParams, ToolResult]) -> ToolResult:
        try:
            return await call_next(context)
        except NotFoundError:
            return tool_error(UnknownTool(context.message.name, self.table.names()))


def algorithm_tools(registry: Registry, calls: Calls, objects: ObjectStore) -> list[Tool]:
    return [AlgorithmTool.from_entry(entry, calls, objects) for entry in registry]
