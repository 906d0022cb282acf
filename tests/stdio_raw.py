"""A stdio MCP client at the line level, as Claude Desktop speaks it: every line the server writes to
stdout must be a JSON-RPC message, from start-up to exit (the SDK client would skip a stray line)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

PROTOCOL = "2025-06-18"


class RawStdio:
    def __init__(self, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.proc, self.stderr = proc, stderr
        self.messages: list[dict[str, Any]] = []  # everything it wrote, parsed
        self._next_id = 0

    @classmethod
    async def spawn(cls, env: dict[str, str], stderr: Path) -> RawStdio:
        """``algo-mcp serve --transport stdio`` as ``mcp.json`` runs it; stderr goes to a file."""
        with stderr.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcp_server", "serve", "--transport", "stdio", cwd=ROOT,
                env={**os.environ, **env}, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, limit=2**24)
        return cls(proc, stderr)

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert line, f"the server closed stdout; its stderr ends:\n{self.stderr.read_text()[-3000:]}"
        message = json.loads(line)  # a stray line (a log, Ray's output) fails here
        assert message.get("jsonrpc") == "2.0", line
        self.messages.append(message)
        return message

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response's ``result`` (notifications that come first are kept in ``messages``)."""
        self._next_id += 1
        self._send({"id": self._next_id, "method": method, "params": params or {}})
        while True:
            message = await self._read()
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                return message["result"]

    async def initialize(self) -> dict[str, Any]:
        result = await self.request("initialize", {"protocolVersion": PROTOCOL, "capabilities": {},
                                                   "clientInfo": {"name": "raw-stdio-test", "version": "1"}})
        self._send({"method": "notifications/initialized"})
        return result

    async def call(self, tool: str, arguments: dict[str, Any], progress_token: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if progress_token:
            params["_meta"] = {"progressToken": progress_token}
        return await self.request("tools/call", params)

    async def close(self) -> int:
        """Close stdin, the MCP way to end a stdio session; the exit code (stdout read to the end)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        while line := await self.proc.stdout.readline():
            self.messages.append(json.loads(line))
        return await self.proc.wait()

    def progress(self, token: str) -> list[str]:
        return [m["params"].get("message", "") for m in self.messages
                if m.get("method") == "notifications/progress" and m["params"].get("progressToken") == token]
