"""The one mapping from :class:`engines.errors.AlgoError` to MCP and HTTP answers."""

from __future__ import annotations

from fastmcp.exceptions import ResourceError
from fastmcp.tools import ToolResult
from starlette.responses import JSONResponse

from engines.errors import AlgoError


def tool_error(err: AlgoError) -> ToolResult:
    """An MCP error result: the message for the model, the details (type first) as structured data."""
    return ToolResult(content=err.message, structured_content={"error": err.to_dict()}, is_error=True)


def resource_error(err: AlgoError) -> ResourceError:
    """A failed resource read: MCP carries only a message there, so it starts with the type."""
    return ResourceError(f"{err.code}: {err.message}")


def http_error(err: AlgoError, headers: dict[str, str] | None = None, *, detail: bool = False) -> JSONResponse:
    """``{"error": {type, message, ...}}`` with the error's status; ``Retry-After`` when a retry may work.
    ``detail``: the message also as ``detail``, where the seed's clients read it (FastAPI's own shape)."""
    headers = dict(headers or {})
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(err.retry_after_s)
    body: dict[str, object] = {"error": err.to_dict()}
    if detail:
        body = {"detail": err.message, **body}
    return JSONResponse(body, status_code=err.http_status, headers=headers or None)
