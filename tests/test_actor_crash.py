"""No acknowledged update is lost, and none counts twice: 1,000 concurrent deposit(1) calls on one
account from two gateways, its host killed (SIGKILL) twice midway; the final balance is the number of
calls acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from pathlib import Path
from uuid import uuid4

import httpx
import ray

from engines.actors.pools import NAMESPACE
from tests.conftest import ROOT, START_DEADLINE_S, Running, free_port
from tests.polling import poll

CALLS = 1000


async def host_pid(host: str) -> int | None:
    with contextlib.suppress(Exception):
        return (await ray.get_actor(host, namespace=NAMESPACE).status.remote())["pid"]
    return None


async def test_deposits_from_two_gateways_count_once_each_through_two_host_kills(server: Running, settings,
                                                                                 tmp_path: Path):
    actors, aid = server.gateway.runtime.actors, f"crash-{uuid4().hex[:8]}"
    await actors.bind("Account", aid, ["Alice"], {"balance": 0})
    port = free_port()
    env = {**server.env, "SERVICE_PORT": str(port), "ALGO_MCP_REGISTRY": str(settings.algo_mcp_registry)}
    second = await asyncio.create_subprocess_exec(sys.executable, "-m", "mcp_server", "serve", "--transport", "http",
                                                  cwd=ROOT, env=env, stdout=asyncio.subprocess.DEVNULL,
                                                  stderr=asyncio.subprocess.DEVNULL)
    acked, failed = 0, []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=server.auth, timeout=120) as http:
            async def up() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).status_code == 200
                return False

            await poll(up, timeout_s=START_DEADLINE_S, interval_s=0.5, what="the second gateway up")
            assert await actors.invoke(aid, "deposit", [0]) == 0  # activate it, to learn its host
            host = await actors.store.holder(aid)
            assert host is not None

            async def here() -> None:
                nonlocal acked
                try:
                    await actors.invoke(aid, "deposit", [1])
                    acked += 1
                except Exception as exc:
                    failed.append(repr(exc))

            async def there() -> None:
                nonlocal acked
                answer = await http.post("/invoke", json={"actor_id": aid, "actor_type": "Account",
                                                          "func_name": "deposit", "params": [1]})
                if answer.status_code == 200:
                    acked += 1
                else:
                    failed.append(answer.text)

            calls = [asyncio.create_task(here() if i % 2 else there()) for i in range(CALLS)]
            for threshold in (CALLS // 5, CALLS // 2):
                await poll(lambda t=threshold: acked >= t, timeout_s=120, interval_s=0.01, what=f"{threshold} acks")
                pid = await host_pid(host)
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                await poll(lambda p=pid: _restarted(host, p), timeout_s=120, interval_s=0.2, what="host back")
            await asyncio.gather(*calls)
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 60)
    balance = (await actors.invoke(aid, "get_info")).rsplit(" ", 1)[1]
    assert float(balance) == acked, (acked, failed[:3])
    assert acked == CALLS, failed[:3]  # calls whose host died were sent again, and counted once
    assert await actors.delete(aid)


async def _restarted(host: str, old_pid: int) -> bool:
    pid = await host_pid(host)
    return pid is not None and pid != old_pid
