"""Small images an answer links to are also sent inline, so the agent can see them.

An output file in a result is ``{url, key, content_type, bytes}``; images up
to ``INLINE_MAX_BYTES`` are read back from the object store and added as MCP
image content beside the JSON.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastmcp.tools import ToolResult
from mcp_types import ImageContent, TextContent

from engines.outputs import output_files
from storage.objects import ObjectStore, StorageError

INLINE_MAX_BYTES = 256 * 1024


async def with_inline_images(result: dict[str, Any], objects: ObjectStore) -> ToolResult:
    content: list[TextContent | ImageContent] = [TextContent(type="text", text=json.dumps(result))]
    for output in output_files(result):
        if str(output["content_type"]).startswith("image/") and int(output["bytes"]) <= INLINE_MAX_BYTES:
            try:
                data, content_type = await objects.get(output["key"])
            except StorageError:
                continue  # the link still stands; inline is a convenience
            content.append(ImageContent(type="image", data=base64.b64encode(data).decode(),
                                        mime_type=content_type))
    return ToolResult(content=content, structured_content=result)
