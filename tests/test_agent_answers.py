"""Answers an agent can act on, checked the way a model meets them: through ``tools/list`` and the
answers' own text, over a real MCP client."""

from __future__ import annotations

import base64
import json

import pytest
from mcp import MCPError
from mcp_types import BlobResourceContents, ResourceLink

from tests.conftest import Running
from tests.fake_apis import png_bytes
from tests.mcp_clients import http_session


async def test_every_tool_describes_every_input_shows_an_example_and_has_a_title(server: Running):
    async with http_session(server.url, server.auth) as session:
        tools = (await session.list_tools()).tools
    assert len(tools) > 10
    missing = []
    for tool in tools:
        schema = tool.input_schema
        properties = schema.get("properties", {})
        missing += [f"{tool.name}.{field}: no description" for field, prop in properties.items()
                    if not prop.get("description")]
        required = schema.get("required", [])
        if required and not schema.get("examples") and not all(properties[f].get("examples") for f in required):
            missing.append(f"{tool.name}: required fields {required} without an example")
        if not tool.title:
            missing.append(f"{tool.name}: no title")
    assert missing == []


async def test_a_task_reference_says_what_to_call_next_with_the_exact_arguments(server: Running):
    async with http_session(server.url, server.auth) as session:
        queued = await session.call_tool("test-sleep-async", {"seconds": 0.5})
        ref = queued.structured_content
        still = await session.call_tool("get_task", {"task_id": ref["task_id"]})
        done = await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 30})
    assert set(ref) == {"task_id", "status", "resource", "poll_after_s"}  # as documented
    assert queued.content[0].text.startswith(
        f'Task {ref["task_id"]} is queued. Call wait_task {{"task_id": "{ref["task_id"]}"}} to wait for it (up to '
        f'50 s a call), or get_task {{"task_id": "{ref["task_id"]}"}} to look.\n\n')
    assert json.loads(queued.content[0].text.split("\n\n", 1)[1]) == ref
    if still.structured_content["status"] in ("queued", "running"):
        assert still.content[0].text.startswith(f"Task {ref['task_id']} is {still.structured_content['status']}")
    assert done.structured_content["status"] == "completed"
    assert json.loads(done.content[0].text) == done.structured_content  # ended: no next step, just the record


@pytest.mark.parametrize(("name", "closest"), [("text-embeddings", "'text-embedding'"),
                                               ("wait-task", "'wait_task'"), ("local_echo", "'local-echo'")])
async def test_an_unknown_tool_is_answered_with_the_closest_names(server: Running, name: str, closest: str):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool(name, {})
    assert result.is_error
    assert result.content[0].text.startswith(f"no tool named {name!r}; did you mean {closest}")
    assert result.structured_content["error"]["type"] == "unknown_tool"


async def test_outputs_are_resources_linked_from_the_answer_and_readable_over_the_connection(server: Running):
    async with http_session(server.url, server.auth) as session:
        ref = (await session.call_tool("nanobanana-image", {"prompt": "a fox"})).structured_content
        done = await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 45})
        image = done.structured_content["result"]["image"]
        links = [c for c in done.content if isinstance(c, ResourceLink)]
        assert [(str(link.uri), link.mime_type, link.size) for link in links] == [
            (f"object://{image['key']}", "image/png", image["bytes"])]
        read = await session.read_resource(str(links[0].uri))
        with pytest.raises(MCPError, match=r"not_found: no object stored under 'outputs/nothing-here/none.png'"):
            await session.read_resource("object://outputs/nothing-here/none.png")
    blob = read.contents[0]
    assert isinstance(blob, BlobResourceContents) and blob.mime_type == "image/png"
    assert base64.b64decode(blob.blob) == png_bytes()
