"""Gateway overhead: ``local-echo`` through algo-mcp vs a bare in-process FastMCP echo tool.

Sequential calls on one long-lived client per server, over in-memory, stdio
and streamable HTTP (the client's default 2026-07-28 era, and the legacy
initialize handshake); then algo-mcp with 500 registered algorithms vs 5
(in-memory and HTTP). Goals: p50(algo-mcp) / p50(bare) ≤ 1.5x per transport,
p50(500) / p50(5) ≤ 1.1x.

Run from the repo root: ``python bench/bench_gateway.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import yaml
from _bare_echo import SERVE_ECHO_APP, ServeEcho, bare_server
from _common import Call, compare, note, print_table, ratio_cell, run, sequential, serving, stats_cells
from fastmcp import Client
from fastmcp.client.transports import StdioTransport
from ray import get_runtime_context, serve  # after _common: it sets the env Ray reads at import

from engines.algorithms.registry import AlgorithmSpec, Registry
from engines.settings import Settings
from mcp_server.app import Gateway, build_gateway, mcp_server

BENCH = Path(__file__).resolve().parent
ECHO = "local-echo"
ARGS = {"text": "hello"}
CALLS, WARMUP = 300, 30
OVERHEAD_GOAL, REGISTRY_GOAL = 1.5, 1.1
FEW, MANY = 5, 500


def registry_of(spec: AlgorithmSpec, size: int) -> Registry:
    """``spec`` plus ``size - 1`` aliases of the same class that are never deployed nor called."""
    aliases = [spec.model_copy(update={"name": f"echo-alias-{i:03d}"}) for i in range(1, size)]
    return Registry.from_specs([(f"bench entry {s.name}", s) for s in [spec, *aliases]])


def tools_only(gateway: Gateway, registry: Registry) -> Gateway:
    """A gateway with a tool per entry of ``registry``, run by ``gateway``'s already started runtime.

    Its own lifespan would deploy every entry; here only ``local-echo`` runs (the main
    gateway deployed it), and the other entries' tools are listed, never called.
    """
    return dataclasses.replace(gateway, registry=registry, mcp=mcp_server(registry, gateway.runtime))


def stdio(command: str, *args: str, **env: str) -> Client:
    transport = StdioTransport(command, list(args), env={**os.environ, **env}, cwd=str(BENCH.parent),
                               keep_alive=False)
    return Client(transport)


async def checked(client: Client, tool: str) -> Call:
    """A call of ``tool`` on ``client``, once checked to echo its argument."""
    result = await client.call_tool(tool, ARGS)
    if result.structured_content != ARGS:
        raise RuntimeError(f"{tool} answered {result.structured_content!r}, not {ARGS!r}")
    return lambda: client.call_tool(tool, ARGS)


async def compare_rows(transport: str, servers: list[tuple[str, str, Call]], goal: float) -> list[list[str]]:
    """Measure ``(server, algorithms, call)`` variants together; the second is held to ``goal``
    against the first (the baseline), any others are shown for scale."""
    stats = await compare({f"{server} ({n} algorithms)": call for server, n, call in servers},
                          sequential, n=CALLS, warmup=WARMUP)
    base = next(iter(stats.values()))
    rows = []
    for i, ((server, n, _), s) in enumerate(zip(servers, stats.values(), strict=True)):
        verdict = ratio_cell(s.p50_ms / base.p50_ms, goal, at_most=True) if i == 1 else ("", "")
        rows.append([transport, server, n, *stats_cells(s), *verdict])
    return rows


async def main() -> None:
    rows: list[list[str]] = []
    async with AsyncExitStack() as stack:
        enter = stack.enter_async_context
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="algo-mcp-bench-")))
        os.environ["DATA_DIR"] = str(tmp / "data")  # the gateways' Redis and objects, not the user's
        settings = Settings(log_level="WARNING")
        spec = Registry.load(settings.algo_mcp_registry).get(ECHO).spec
        registry_file = tmp / "algorithms.yaml"
        # Only the fields the real file sets, so the copy loads (and fingerprints) the same.
        registry_file.write_text(yaml.safe_dump([spec.model_dump(mode="json", exclude_unset=True)]))
        gateway, bare = build_gateway(settings, registry_of(spec, 1)), bare_server()
        note("starting Ray and deploying local-echo (the gateway's own lifespan, in the background)")
        algo_mem = await enter(Client(gateway.mcp))  # holds the lifespan: the runtime stops when it closes
        await gateway.runtime.started()
        note("deploying a bare Serve echo (the floor for any Serve-backed tool, for scale)")
        await asyncio.to_thread(serve.run, ServeEcho.bind(), name=SERVE_ECHO_APP, route_prefix=None)
        serve_echo = serve.get_deployment_handle(ServeEcho.name, app_name=SERVE_ECHO_APP)
        ray_address = get_runtime_context().gcs_address
        note("starting the HTTP servers and the stdio subprocesses")
        algo_url = f"{await enter(serving(gateway.http_app()))}/mcp"
        bare_url = f"{await enter(serving(bare.http_app(path='/mcp')))}/mcp"
        clients = {
            "in-memory": (algo_mem, await enter(Client(bare)), await enter(Client(bare_server(serve_echo)))),
            "stdio": (
                # A second gateway on the same cluster, Redis and DATA_DIR: it reuses the deployments.
                await enter(stdio(str(Path(sys.executable).with_name("algo-mcp")), "serve",
                                  "--transport", "stdio", LOG_LEVEL="WARNING",
                                  RAY_ADDRESS=ray_address,
                                  REDIS_URL=gateway.runtime.tasks.config.redis_url,
                                  ALGO_MCP_REGISTRY=str(registry_file))),
                await enter(stdio(sys.executable, str(BENCH / "_bare_echo.py"))),
                await enter(stdio(sys.executable, str(BENCH / "_bare_echo.py"), "--serve", LOG_LEVEL="WARNING",
                                  RAY_ADDRESS=ray_address)),
            ),
            "HTTP": (await enter(Client(algo_url)), await enter(Client(bare_url)), None),
            "HTTP legacy": (await enter(Client(algo_url, mode="legacy")),
                            await enter(Client(bare_url, mode="legacy")), None),
        }
        for transport, (algo, base, base_on_serve) in clients.items():
            note(f"{transport}: algo-mcp vs bare FastMCP")
            servers = [("bare FastMCP", "1", await checked(base, "echo")),
                       ("algo-mcp", "1", await checked(algo, ECHO))]
            if base_on_serve is not None:  # the same bare tool, echoing through a bare Serve deployment
                servers.append(("bare FastMCP + bare Serve deployment", "1", await checked(base_on_serve, "echo")))
            if transport == "in-memory":  # the Ray Serve round trip alone, for scale
                servers.append(("engines.calls only, no MCP", "1",
                                lambda: gateway.runtime.calls.invoke(ECHO, ARGS)))
            rows += await compare_rows(transport, servers, OVERHEAD_GOAL)

        few, many = (tools_only(gateway, registry_of(spec, n)) for n in (FEW, MANY))
        few_url, many_url = [f"{await enter(serving(g.http_app()))}/mcp" for g in (few, many)]
        sized = {
            "in-memory": (await enter(Client(few.mcp)), await enter(Client(many.mcp))),
            "HTTP": (await enter(Client(few_url)), await enter(Client(many_url))),
            "HTTP legacy": (await enter(Client(few_url, mode="legacy")),
                            await enter(Client(many_url, mode="legacy"))),
        }
        for transport, (small, big) in sized.items():
            note(f"{transport}: algo-mcp with {MANY} algorithms vs {FEW}")
            rows += await compare_rows(transport, [("algo-mcp", str(FEW), await checked(small, ECHO)),
                                                   ("algo-mcp", str(MANY), await checked(big, ECHO))],
                                       REGISTRY_GOAL)
        note("shutting down")
    print(f"\nGateway overhead: {CALLS} sequential `{ECHO}` calls per row after {WARMUP} warm-up on one "
          "long-lived fastmcp.Client; HTTP = the client's default era (2026-07-28, stateless), "
          "HTTP legacy = the initialize handshake. Ratio = p50 / p50 of the first row of its group.\n")
    print_table(["transport", "server", "algorithms", "p50 ms", "p99 ms", "calls/s", "p50 ratio", "goal"],
                rows)


if __name__ == "__main__":
    run(main)
