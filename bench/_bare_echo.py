"""The baseline: a bare FastMCP server with one in-process ``echo`` tool, no Ray.

Imported by ``bench_gateway.py`` for the in-memory and HTTP runs, and run as a
script (``python bench/_bare_echo.py``) as its stdio server.
"""

from __future__ import annotations

from fastmcp import FastMCP


def bare_server() -> FastMCP:
    mcp = FastMCP("bare-echo")

    @mcp.tool
    async def echo(text: str) -> dict[str, str]:
        """Send a text back unchanged."""
        return {"text": text}

    return mcp


if __name__ == "__main__":
    bare_server().run("stdio", show_banner=False)
