"""Following long jobs over MCP: the ``task://{task_id}`` resource and the task tools.

``wait_task`` long-polls under MCP clients' 60 s request timeout and sends
progress notifications while it waits. Everything is read from the task
queue, so any gateway answers for any task. Errors are tool errors with their
type, like the algorithm tools' (``mcp_server.errors``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Literal

from fastmcp import Context
from fastmcp.resources import ResourceTemplate
from fastmcp.tools import Tool, ToolResult
from mcp_types import ToolAnnotations
from pydantic import Field

from engines.errors import AlgoError
from engines.tasks.queue import TASK_ID_MAX_LENGTH, TASK_ID_PATTERN, TaskQueue
from mcp_server.errors import resource_error, tool_error
from mcp_server.inline_media import with_inline_images
from storage import TaskRecord
from storage.objects import ObjectStore

MAX_WAIT_S = 50
Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TaskId = Annotated[str, Field(min_length=1, max_length=TASK_ID_MAX_LENGTH, pattern=TASK_ID_PATTERN,
                              description="the task_id a long job returned")]
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
CANCELS = ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False)


class TaskTools:
    """The task tools and the ``task://`` template, as methods over one task queue."""

    def __init__(self, tasks: TaskQueue, objects: ObjectStore) -> None:
        self.tasks, self.objects = tasks, objects

    def tools(self) -> list[Tool]:
        return [Tool.from_function(self.get_task, annotations=READ_ONLY),
                Tool.from_function(self.wait_task, annotations=READ_ONLY),
                Tool.from_function(self.cancel_task, annotations=CANCELS),
                Tool.from_function(self.list_tasks, annotations=READ_ONLY)]

    def templates(self) -> list[ResourceTemplate]:
        return [ResourceTemplate.from_function(
            self.task_resource, "task://{task_id}", name="task", mime_type="application/json",
            description="A long job's record: status, progress, result or error, attempts, timestamps.")]

    async def _answer(self, work: Awaitable[TaskRecord | list[TaskRecord]]) -> ToolResult:
        try:
            found = await work
        except AlgoError as err:
            return tool_error(err)
        if isinstance(found, list):
            return await with_inline_images({"tasks": [r.public() for r in found]}, self.objects)
        return await with_inline_images(found.public(), self.objects)

    async def get_task(self, task_id: TaskId) -> ToolResult:
        """The current record of a long job (status, progress, result or error)."""
        return await self._answer(self.tasks.get(task_id))

    async def wait_task(self, task_id: TaskId, ctx: Context,
                        timeout_s: Annotated[float, Field(ge=0, le=MAX_WAIT_S)] = 30) -> ToolResult:
        """Wait until a long job ends or timeout_s (at most 50) passes, then return its record.

        Progress is sent as notifications meanwhile; call again if it is still running."""
        async def follow() -> TaskRecord:
            last = None
            async for record in self.tasks.watch(task_id, timeout_s):
                last = record
                await ctx.report_progress(record.progress, 1.0, record.progress_message or record.status.value)
            return last or await self.tasks.get(task_id)

        return await self._answer(follow())

    async def cancel_task(self, task_id: TaskId) -> ToolResult:
        """Cancel a queued or running long job; an ended one is left as it is."""
        return await self._answer(self.tasks.cancel(task_id))

    async def list_tasks(self, status: Status | None = None, algorithm: str | None = None,
                         limit: Annotated[int, Field(ge=1, le=200)] = 20) -> ToolResult:
        """Recent long jobs, newest first, optionally only one status or algorithm."""
        return await self._answer(self.tasks.recent(status, algorithm, limit))

    async def task_resource(self, task_id: str) -> str:
        try:
            return json.dumps((await self.tasks.get(task_id)).public())
        except AlgoError as err:
            raise resource_error(err) from None
