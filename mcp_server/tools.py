"""Registry entries → MCP tools, in one place; no per-algorithm MCP code.

Each tool publishes its algorithm's pydantic input and output schemas
verbatim (descriptions, examples, limits) and validates arguments itself, so a
bad call is an error naming the field and the rule before anything reaches
Ray. Tools are served from a dict so a call costs the same with 5 or 500
algorithms registered.
"""

from __future__ import annotations

from typing import Any

from fastmcp.server.providers import Provider
from fastmcp.tools import Tool, ToolResult
from mcp_types import ToolAnnotations
from pydantic import PrivateAttr

from engines.client import AlgorithmClient
from engines.errors import AlgoError
from engines.registry import Entry
from mcp_server.errors import tool_error


class AlgorithmTool(Tool):
    """An MCP tool that proxies into one algorithm's Serve deployment."""

    _client: AlgorithmClient = PrivateAttr()

    @classmethod
    def from_entry(cls, entry: Entry, client: AlgorithmClient) -> AlgorithmTool:
        algo = entry.cls
        tool = cls(
            name=entry.name,
            description=entry.spec.description or (algo.__doc__ or entry.name).strip(),
            parameters=algo.Input.model_json_schema(),
            output_schema=algo.Output.model_json_schema(),
            annotations=ToolAnnotations(
                read_only_hint=algo.read_only,
                idempotent_hint=algo.idempotent,
                open_world_hint=entry.spec.kind == "external",
            ),
        )
        tool._client = client
        return tool

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            result = await self._client.invoke(self.name, arguments)
        except AlgoError as err:
            return tool_error(err)
        return ToolResult(structured_content=result)


class ToolTable(Provider):
    """Tools by name: O(1) lookup where FastMCP's default provider scans every tool per call."""

    def __init__(self, tools: list[Tool]) -> None:
        super().__init__()
        self._tools = {t.name: t for t in tools}

    async def _list_tools(self) -> list[Tool]:
        return list(self._tools.values())

    async def _get_tool(self, name: str, version: Any = None) -> Tool | None:
        return self._tools.get(name)


def algorithm_tools(client: AlgorithmClient) -> ToolTable:
    return ToolTable([AlgorithmTool.from_entry(e, client) for e in client.registry])
