"""Following long jobs and reading outputs over MCP: the task tools, ``task://{task_id}`` and
``object://{key}``.

``wait_task`` long-polls under MCP clients' 60 s request timeout and sends
progress notifications while it waits; an answer about a task still running
says what to call next. Everything is read from the task queue and the object
store, so any gateway answers for any task. Errors are tool errors with their
type, like the algorithm tools' (``mcp_server.errors``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Annotated, Literal

from fastmcp import Context
from fastmcp.resources import ResourceContent, ResourceResult, ResourceTemplate
from fastmcp.tools import Tool, ToolResult
from mcp_types import ToolAnnotations
from pydantic import Field

from engines.errors import AlgoError, NotFound, TooLarge
from engines.tasks.queue import TASK_ID_MAX_LENGTH, TASK_ID_PATTERN, TaskQueue
from mcp_server.answers import MAX_WAIT_S, OBJECT_URI, answer
from mcp_server.errors import resource_error, tool_error
from storage import TaskRecord
from storage.objects import ObjectNotFound, ObjectStore, StorageError

#: resources/read carries the bytes base64 in one JSON message: larger outputs are for their link
MAX_OBJECT_BYTES = 20 * 1024 * 1024
Status = Literal["queued", "running", "completed", "failed", "cancelled"]
EXAMPLE_ID = "3f2a9c1e5b7d4f60a8e2c4b6d8f0a1b3"
TaskId = Annotated[str, Field(min_length=1, max_length=TASK_ID_MAX_LENGTH, pattern=TASK_ID_PATTERN,
                              description="the task_id a long job returned", examples=[EXAMPLE_ID])]
WaitS = Annotated[float, Field(ge=0, le=MAX_WAIT_S, description=(
    f"how long to wait at most, 0 to {MAX_WAIT_S} seconds (under clients' 60 s limit); the record comes back "
    "as soon as the task ends, or as it stands when the time is up: then call wait_task again"),
    examples=[30])]
StatusFilter = Annotated[Status | None, Field(description="only tasks with this status (default: any)")]
AlgorithmFilter = Annotated[str | None, Field(description="only tasks of this algorithm (tool name)",
                                              examples=["nanobanana-image"])]
Limit = Annotated[int, Field(ge=1, le=200, description="at most this many, newest first (1 to 200)")]
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
CANCELS = ToolAnnotations(destructive_hint=True, idempotent_hint=True, open_world_hint=False)


class TaskTools:
    """The task tools and the ``task://`` and ``object://`` templates, over one queue and store."""

    def __init__(self, tasks: TaskQueue, objects: ObjectStore) -> None:
        self.tasks, self.objects = tasks, objects

    def tools(self) -> list[Tool]:
        return [Tool.from_function(self.get_task, title="Look at a task", annotations=READ_ONLY),
                Tool.from_function(self.wait_task, title="Wait for a task", annotations=READ_ONLY),
                Tool.from_function(self.cancel_task, title="Cancel a task", annotations=CANCELS),
                Tool.from_function(self.list_tasks, title="List recent tasks", annotations=READ_ONLY)]

    def templates(self) -> list[ResourceTemplate]:
        return [
            ResourceTemplate.from_function(
                self.task_resource, "task://{task_id}", name="task", title="A long job's record",
                mime_type="application/json",
                description="A long job's record: status, progress, result or error, attempts, timestamps."),
            ResourceTemplate.from_function(
                self.object_resource, OBJECT_URI + "{key*}", name="object", title="A stored output",
                description="A file an algorithm produced (outputs/<task_id>/<name>), as bytes with its type; "
                            "tool results link to it as a resource_link beside its download URL."),
        ]

    async def _answer(self, work: Awaitable[TaskRecord | list[TaskRecord]]) -> ToolResult:
        try:
            found = await work
        except AlgoError as err:
            return tool_error(err)
        if isinstance(found, list):
            return await answer({"tasks": [r.public() for r in found]}, self.objects)
        return await answer(found.public(), self.objects, task=True)

    async def get_task(self, task_id: TaskId) -> ToolResult:
        """The current record of a long job (status, progress, result or error)."""
        return await self._answer(self.tasks.get(task_id))

    async def wait_task(self, task_id: TaskId, ctx: Context, timeout_s: WaitS = 30) -> ToolResult:
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

    async def list_tasks(self, status: StatusFilter = None, algorithm: AlgorithmFilter = None,
                         limit: Limit = 20) -> ToolResult:
        """Recent long jobs, newest first, optionally only one status or algorithm."""
        return await self._answer(self.tasks.recent(status, algorithm, limit))

    async def task_resource(self, task_id: str) -> str:
        try:
            return json.dumps((await self.tasks.get(task_id)).public())
        except AlgoError as err:
            raise resource_error(err) from None

    async def object_resource(self, key: str) -> ResourceResult:
        try:
            data, content_type = await self.objects.get(key)
        except ObjectNotFound:
            raise resource_error(NotFound(f"no object stored under {key!r}")) from None
        except StorageError as exc:
            raise resource_error(NotFound(f"{key!r}: {exc}")) from None
        if len(data) > MAX_OBJECT_BYTES:
            raise resource_error(TooLarge(f"{key!r} is {len(data)} bytes, past the {MAX_OBJECT_BYTES} a resource "
                                          "read carries; download it from its url instead"))
        return ResourceResult([ResourceContent(data, mime_type=content_type)])
