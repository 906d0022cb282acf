"""The one mapping from :class:`engines.errors.AlgoError` to MCP and HTTP answers."""

from __future__ import annotations

from fastmcp.tools import ToolResult
from starlette.responses import JSONResponse

from engines.errors import AlgoError, Busy


def tool_error(err: AlgoError) -> ToolResult:
    """An MCP error result: the message for the model, the details as structured data."""
    return ToolResult(content=err.message, structured_content={"error": err.to_dict()}, is_error=True)


def http_error(err: AlgoError) -> JSONResponse:
    headers = {"Retry-After": str(err.retry_after_s)} if isinstance(err, Busy) else None
    return JSONResponse({"error": err.to_dict()}, status_code=err.http_status, headers=headers)
