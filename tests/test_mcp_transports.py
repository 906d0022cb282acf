"""The same tools over streamable HTTP, SSE and stdio, with real SDK clients."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import httpx
import pytest
from mcp.server.lowlevel import Server

from tests.conftest import Running
from tests.mcp_clients import ROOT, http_session, mcp_json_server, sse_session, stdio_session

DEFAULT_TOOLS = {"local-echo", "text-embedding", "image-classify", "video-classify", "external-sentiment",
                 "nanobanana-image"}
TASK_TOOLS = {"get_task", "wait_task", "cancel_task", "list_tasks"}
ACTOR_TOOLS = {"Account.deposit", "Account.withdraw", "Account.get_info", "GamePlayer.get_info",
               "GamePlayer.update_position", "GamePlayer.use_skill", "GamePlayer.take_damage",
               "actor_bind", "actor_get", "actor_list", "actor_delete"}
PIPELINE_TOOLS = {"pipeline_start", "pipeline_stop", "pipeline_list", "pipeline_get", "pipeline_peek",
                  "pipeline_backfill"}


async def test_http_lists_one_tool_per_algorithm_with_schemas(server: Running):
    async with http_session(server.url, server.auth) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
    assert DEFAULT_TOOLS | TASK_TOOLS | {"test-sleep", "test-timeout"} <= set(tools)
    embed = tools["text-embedding"]
    texts = embed.input_schema["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"], texts["items"]["maxLength"]) == (1, 64, 8000)
    assert texts["description"] and texts["examples"]
    assert embed.output_schema["properties"]["embeddings"]["description"]
    assert embed.annotations.read_only_hint and not embed.annotations.open_world_hint
    assert tools["external-sentiment"].annotations.open_world_hint
    assert "Hugging Face" in tools["external-sentiment"].description


async def test_http_call_returns_structured_content(server: Running):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool("local-echo", {"text": "héllo"})
    assert not result.is_error
    assert result.structured_content == {"text": "héllo"}
    assert json.loads(result.content[0].text) == {"text": "héllo"}


async def test_sse_serves_the_same_tools(server: Running):
    async with sse_session(server.url, server.auth) as session:
        result = await session.call_tool("local-echo", {"text": "over sse"})
        names = {t.name for t in (await session.list_tools()).tools}
    assert result.structured_content == {"text": "over sse"}
    assert names >= DEFAULT_TOOLS


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token-6f1d"},
                                     {"Authorization": "Basic test-token-6f1d"}])
@pytest.mark.parametrize("path", ["/mcp", "/sse", "/invoke/local-echo", "/docs"])
async def test_network_transports_require_the_token(server: Running, path: str, headers: dict):
    async with httpx.AsyncClient(base_url=server.url) as http:
        method = http.get if path in ("/sse", "/docs") else http.post
        response = await method(path, headers=headers, **({} if method == http.get else {"json": {}}))
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["type"] == "unauthorized"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_token_scheme_is_case_insensitive(server: Running, scheme: str):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.post("/invoke/local-echo", json={"text": "hi"},
                                   headers={"Authorization": f"{scheme} {server.token}"})
    assert response.status_code == 200 and response.json()["result"] == {"text": "hi"}


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    return [e for x in group.exceptions for e in (leaves(x) if isinstance(x, BaseExceptionGroup) else [x])]


async def test_mcp_client_with_a_wrong_token_cannot_connect(server: Running):
    """The SDK turns the 401 (checked over plain HTTP above) into one error response inside its task groups."""
    connected = False
    with pytest.raises(ExceptionGroup) as refused:
        async with http_session(server.url, {"Authorization": "Bearer wrong"}):
            connected = True
    assert not connected
    assert [(type(e).__name__, str(e)) for e in leaves(refused.value)] == [
        ("MCPError", "Server returned an error response")]


async def test_healthz_is_open_and_reports_every_algorithm(server: Running):
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "ok"
    assert {a: s["status"] for a, s in body["algorithms"].items() if a in DEFAULT_TOOLS} == \
        dict.fromkeys(DEFAULT_TOOLS, "RUNNING")


async def test_stdio_from_mcp_json_joins_the_cluster_and_keeps_stdout_clean(server: Running):
    command, args, extra_env = mcp_json_server()
    if not (ROOT / command).exists():  # mcp.json points at the README's .venv
        command = str(Path(sys.executable).parent / "algo-mcp")
    env = {**server.env, **extra_env}
    async with stdio_session(command, args, env) as session:
        names = {t.name for t in (await session.list_tools()).tools}
        result = await session.call_tool("local-echo", {"text": "from claude desktop"})
        bad = await session.call_tool("text-embedding", {"texts": []})
    assert names == DEFAULT_TOOLS | TASK_TOOLS | ACTOR_TOOLS | PIPELINE_TOOLS  # the default registry, not the tests'
    assert result.structured_content == {"text": "from claude desktop"}
    assert bad.is_error and bad.content[0].text == "texts: at least 1 item (got 0)"


INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


@pytest.mark.skipif(shutil.which("npx") is None, reason="the MCP Inspector needs Node.js (npx)")
async def test_the_inspector_cli_lists_and_calls_tools(server: Running, tmp_path: Path):
    base = ["npx", "--yes", INSPECTOR, "--cli", f"{server.url}/mcp", "--transport", "http",
            "--header", f"Authorization: Bearer {server.token}"]
    env = {**os.environ, "npm_config_update_notifier": "false"}

    async def inspector(*args: str) -> dict:  # async: the gateway shares this event loop
        proc = await asyncio.create_subprocess_exec(*base, *args, cwd=tmp_path, env=env,
                                                    stdout=PIPE, stderr=PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
        assert proc.returncode == 0, err.decode()[-2000:]
        return json.loads(out)

    listed = await inspector("--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} >= DEFAULT_TOOLS
    called = await inspector("--method", "tools/call", "--tool-name", "local-echo", "--tool-arg", "text=inspected")
    assert called["structuredContent"] == {"text": "inspected"} and not called["isError"]


@pytest.mark.parametrize(("arguments", "problem"), [
    ({"texts": []}, "texts: at least 1 item (got 0)"),
    ({"texts": ["a"] * 65}, "texts: at most 64 items (got 65)"),
    ({"texts": ["ok", 7]}, "texts[1]: input should be a valid string (got int 7)"),
    ({"texts": "cat"}, "texts: input should be a valid list (got 'cat')"),
    ({"texts": ["x" * 2_000_000]}, "texts[0]: at most 8000 characters (got 2000000)"),
    ({}, "texts: required"),
])
async def test_bad_arguments_are_tool_errors_naming_field_and_rule(server: Running, arguments: dict, problem: str):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool("text-embedding", arguments)
    assert result.is_error
    assert result.content[0].text == problem
    assert result.structured_content["error"] == {"type": "validation_failed", "message": problem,
                                                  "problems": [problem]}


def test_the_sdk_is_handed_our_schema_lookup(server: Running):
    """Pinned: FastMCP 4.1 does not pass the SDK server a schema lookup, so the gateway sets the SDK's
    documented ``get_tool_input_schema`` itself (per-call cost would grow with the registry otherwise)."""
    lowlevel = server.gateway.mcp._mcp_server
    assert isinstance(lowlevel, Server) and "get_tool_input_schema" in inspect.signature(Server.__init__).parameters
    assert lowlevel.get_tool_input_schema("local-echo")["properties"]["text"]["maxLength"] == 100_000
    assert lowlevel.get_tool_input_schema("wait_task")["properties"]["timeout_s"]["maximum"] == 50
    assert lowlevel.get_tool_input_schema("no-such-tool") is None
