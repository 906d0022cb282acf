"""Following long jobs over MCP: the ``task://{task_id}`` resource and the task tools.

``wait_task`` long-polls under MCP clients' 60 s request timeout and sends
progress notifications while it waits. Everything is read from the task
queue, so any gateway answers for any task.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ResourceError, ToolError
from fastmcp.tools import ToolResult
from mcp_types import ToolAnnotations
from pydantic import Field

from engines.errors import AlgoError
from engines.task_queue import TASK_ID_MAX_LENGTH, TASK_ID_PATTERN, TaskQueue
from mcp_server.inline_media import with_inline_images

MAX_WAIT_S = 50
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TaskId = Annotated[str, Field(min_length=1, max_length=TASK_ID_MAX_LENGTH, pattern=TASK_ID_PATTERN,
                              description="the task_id a long job returned")]
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def add_task_tools(mcp: FastMCP, queue: TaskQueue) -> None:
    @mcp.resource("task://{task_id}", mime_type="application/json", name="task",
                  description="A long job's record: status, progress, result or error, attempts, timestamps.")
    async def task_resource(task_id: str) -> str:
        try:
            return json.dumps((await queue.get(task_id)).public())
        except AlgoError as err:
            raise ResourceError(err.message) from None

    async def guarded(work: Any) -> dict[str, Any]:
        try:
            return await work
        except AlgoError as err:
            raise ToolError(err.message) from None

    @mcp.tool(annotations=READ_ONLY)
    async def get_task(task_id: TaskId) -> ToolResult:
        """The current record of a long job (status, progress, result or error)."""
        return await with_inline_images(await guarded(_public(queue.get(task_id))), queue.objects)

    @mcp.tool(annotations=READ_ONLY)
    async def wait_task(task_id: TaskId, ctx: Context,
                        timeout_s: Annotated[float, Field(ge=0, le=MAX_WAIT_S)] = 30) -> ToolResult:
        """Wait until a long job ends or timeout_s (at most 50) passes, then return its record.

        Progress is sent as notifications meanwhile; call again if it is still running."""
        async def follow() -> dict[str, Any]:
            last = None
            async for record in queue.watch(task_id, timeout_s):
                last = record
                await ctx.report_progress(record.progress, 1.0, record.progress_message or record.status.value)
            return (last or await queue.get(task_id)).public()

        return await with_inline_images(await guarded(follow()), queue.objects)

    @mcp.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    async def cancel_task(task_id: TaskId) -> dict[str, Any]:
        """Cancel a queued or running long job; an ended one is left as it is."""
        return await guarded(_public(queue.cancel(task_id)))

    @mcp.tool(annotations=READ_ONLY)
    async def list_tasks(status: Status | None = None, algorithm: str | None = None,
                         limit: Annotated[int, Field(ge=1, le=200)] = 20) -> dict[str, Any]:
        """Recent long jobs, newest first, optionally only one status or algorithm."""
        async def listing() -> dict[str, Any]:
            records = await queue.list(status, algorithm, limit)
            return {"tasks": [r.public() for r in records]}

        return await guarded(listing())


async def _public(pending: Any) -> dict[str, Any]:
    return (await pending).public()
