"""How a result becomes an MCP answer an agent can act on.

The JSON result is the structured content and, as text, the same JSON; a task
that has not ended leads with what to call next, with the exact arguments
(desktop clients do not read resources by themselves, so a model must not
have to guess). Every output file (``{url, key, content_type, bytes}``) is
also a ``resource_link`` to ``object://<key>``, which ``resources/read``
answers with the bytes over the connection the client already has (stdio
included); small images come inline too, so the agent can see them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastmcp.tools import ToolResult
from mcp_types import ContentBlock, ImageContent, ResourceLink, TextContent

from engines.outputs import output_files
from storage.objects import ObjectStore, StorageError

INLINE_MAX_BYTES = 256 * 1024
MAX_WAIT_S = 50  # wait_task's longest wait, under desktop clients' 60 s per call
OBJECT_URI = "object://"


def next_step(task: dict[str, Any]) -> str | None:
    """For a task (reference or record) still queued or running: what to call next, with its exact arguments."""
    status, task_id = task.get("status"), task.get("task_id")
    if status not in ("queued", "running") or not task_id:
        return None
    progress = ""
    if status == "running" and task.get("progress"):
        said = f": {task['progress_message']}" if task.get("progress_message") else ""
        progress = f" ({round(task['progress'] * 100)}% done{said})"
    arguments = json.dumps({"task_id": task_id})
    return (f"Task {task_id} is {status}{progress}. Call wait_task {arguments} to wait for it (up to {MAX_WAIT_S} s "
            f"a call), or get_task {arguments} to look.")


def _link(output: dict[str, Any]) -> ResourceLink:
    key = str(output["key"])
    return ResourceLink(type="resource_link", uri=f"{OBJECT_URI}{key}", name=key.rsplit("/", 1)[-1],
                        mime_type=str(output["content_type"]), size=int(output["bytes"]),
                        description=f"the stored output {key} (also downloadable at its url)")


async def answer(result: dict[str, Any], objects: ObjectStore, *, task: bool = False) -> ToolResult:
    """``task``: ``result`` is a task reference or record, so it says what to call next while it runs."""
    text = json.dumps(result)
    lead = next_step(result) if task else None
    content: list[ContentBlock] = [TextContent(type="text", text=f"{lead}\n\n{text}" if lead else text)]
    for output in output_files(result):
        content.append(_link(output))
        if str(output["content_type"]).startswith("image/") and int(output["bytes"]) <= INLINE_MAX_BYTES:
            try:
                data, content_type = await objects.get(output["key"])
            except StorageError:
                continue  # the link still stands; inline is a convenience
            content.append(ImageContent(type="image", data=base64.b64encode(data).decode(),
                                        mime_type=content_type))
    return ToolResult(content=content, structured_content=result)
