"""Registry entries → MCP tools, in one place; no per-algorithm MCP code.

Each tool publishes its algorithm's pydantic input and output schemas
verbatim (descriptions, examples, limits) and validates arguments itself, so a
bad call is an error naming the field and the rule before anything reaches
Ray. The entry's ``mode`` decides the answer: the result (sync), a task
reference at once (async), or the result if it is ready within the sync
budget and a task reference otherwise (auto). Tools are served from a dict so
a call costs the same with 5 or 500 algorithms registered.
"""

from __future__ import annotations

from typing import Any

from fastmcp.server.providers import Provider
from fastmcp.tools import Tool, ToolResult
from mcp_types import ToolAnnotations
from pydantic import PrivateAttr, TypeAdapter

from engines.errors import AlgoError
from engines.registry import Entry
from engines.task_queue import TaskQueue, TaskRef, outcome
from mcp_server.errors import tool_error
from mcp_server.inline_media import with_inline_images


def _output_schema(entry: Entry) -> dict[str, Any]:
    output = entry.cls.Output
    if entry.spec.mode == "sync":
        return output.model_json_schema()
    if entry.spec.mode == "async":
        return TaskRef.model_json_schema()
    return {"type": "object", **TypeAdapter(output | TaskRef).json_schema()}


class AlgorithmTool(Tool):
    """An MCP tool that proxies into one algorithm's Serve deployment (or its task queue)."""

    _queue: TaskQueue = PrivateAttr()
    _entry: Entry = PrivateAttr()

    @classmethod
    def from_entry(cls, entry: Entry, queue: TaskQueue) -> AlgorithmTool:
        algo = entry.cls
        tool = cls(
            name=entry.name,
            description=entry.spec.description or (algo.__doc__ or entry.name).strip(),
            parameters=algo.Input.model_json_schema(),
            output_schema=_output_schema(entry),
            annotations=ToolAnnotations(
                read_only_hint=algo.read_only,
                idempotent_hint=algo.idempotent,
                open_world_hint=entry.spec.kind == "external",
            ),
        )
        tool._queue, tool._entry = queue, entry
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            return await with_inline_images(await self._answer(arguments), self._queue.objects)
        except AlgoError as err:
            return tool_error(err)

    async def _answer(self, arguments: dict[str, Any]) -> dict[str, Any]:
        queue, mode = self._queue, self._entry.spec.mode
        if mode == "sync":
            return await queue.client.invoke(self.name, arguments)
        record = await queue.submit(self.name, arguments)
        if mode == "auto":
            record = await queue.wait(record.task_id, queue.settings.sync_budget_s)
            if record.terminal:
                return outcome(record)
        return TaskRef.of(record).model_dump()


class ToolTable(Provider):
    """Tools by name: O(1) lookup where FastMCP's default provider scans every tool per call."""

    def __init__(self, tools: list[Tool]) -> None:
        super().__init__()
        self._tools = {t.name: t for t in tools}

    async def _list_tools(self) -> list[Tool]:
        return list(self._tools.values())

    async def _get_tool(self, name: str, version: Any = None) -> Tool | None:
        return self._tools.get(name)

    def input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self._tools.get(name)
        return tool.parameters if tool else None


def algorithm_tools(queue: TaskQueue) -> ToolTable:
    return ToolTable([AlgorithmTool.from_entry(e, queue) for e in queue.client.registry])
