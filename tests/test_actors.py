"""Actors end to end on real Ray, Valkey and the object store: lazy binding, one call at a time,
passivation and reactivation, the object-store tier, delete, bad inputs, and every face (Python, MCP,
the seed's REST)."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import httpx
import pytest

from engines.actors import api
from engines.actors.host import ActorHost, CallOrder, HostConfig
from engines.errors import (
    ActorCallFailed,
    AlreadyBound,
    UnknownActor,
    UnknownAlgorithm,
    UnknownMethod,
    ValidationFailed,
)
from tests.conftest import Running
from tests.mcp_clients import http_session
from tests.polling import poll


def new_id(kind: str = "acct") -> str:
    return f"{kind}-{uuid4().hex[:10]}"


async def test_calls_on_one_actor_run_one_at_a_time_in_arrival_order_and_readers_overlap():
    order, seen = CallOrder(), []

    async def call(name: str, read_only: bool, hold_s: float = 0.01) -> None:
        async with order.hold(read_only):
            seen.append(f"{name}+")
            await asyncio.sleep(hold_s)
            seen.append(f"{name}-")

    tasks = [asyncio.create_task(call("w1", False)), asyncio.create_task(call("r1", True)),
             asyncio.create_task(call("r2", True)), asyncio.create_task(call("w2", False))]
    await asyncio.gather(*tasks)
    assert seen[:2] == ["w1+", "w1-"]  # a writer alone
    assert set(seen[2:4]) == {"r1+", "r2+"}  # the two readers together, after it
    assert seen[-2:] == ["w2+", "w2-"]  # the later writer waits for both


async def test_binding_is_lazy_and_an_actor_counts_every_call_once(server: Running):
    actors, aid = server.gateway.runtime.actors, new_id()
    record = await actors.bind("Account", aid, ["Alice"], {"balance": 100})
    assert record.version == 0 and record.tier == "none yet" and await actors.live(aid) is None
    assert (await actors.bind("Account", aid, ["Alice"], {"balance": 100})).actor_id == aid  # the same: no-op
    with pytest.raises(AlreadyBound, match=f"actor '{aid}' is already bound, to other arguments"):
        await actors.bind("Account", aid, ["Bob"])
    results = await asyncio.gather(*(actors.invoke(aid, "deposit", [1]) for _ in range(40)))
    assert sorted(results) == list(range(101, 141))  # one at a time: each saw every one before it
    assert await actors.invoke(aid, "get_info") == f"Name: Alice, CardID: , Balance: {140.0}"
    stored = await actors.get(aid)
    assert stored.state["balance"] == 140 and stored.calls == 40 and stored.tier == "redis"
    assert (await actors.live(aid))["state"]["balance"] == 140


async def test_bad_calls_are_errors_naming_what_was_wrong(server: Running):
    actors, aid = server.gateway.runtime.actors, new_id()
    await actors.bind("Account", aid, ["Alice"])
    with pytest.raises(UnknownActor, match="no actor bound under id 'nobody-here'"):
        await actors.invoke("nobody-here", "deposit", [1])
    with pytest.raises(UnknownMethod, match=r"no method named 'Account\.depost'; did you mean 'Account\.deposit'"):
        await actors.invoke(aid, "depost", [1])
    with pytest.raises(ValidationFailed, match=r"Account\.deposit\.amount: input should be a valid number"):
        await actors.invoke(aid, "deposit", ["lots"])
    with pytest.raises(ValidationFailed, match=r"Account\.deposit: takes 1 argument\(s\), got 2 positional"):
        await actors.invoke(aid, "deposit", [1, 2])
    with pytest.raises(ValidationFailed, match=r"actor_id: 1 to 128 characters"):
        await actors.invoke("../etc", "deposit", [1])
    with pytest.raises(UnknownAlgorithm, match="no algorithm named 'Acount'; did you mean 'Account'"):
        await actors.bind("Acount", new_id())
    with pytest.raises(ValidationFailed, match=r"Account\(\)\.name: required"):
        await actors.bind("Account", new_id())


async def test_a_method_that_raises_leaves_the_state_as_last_checkpointed(server: Running):
    actors, aid = server.gateway.runtime.actors, new_id("count")
    await actors.bind("TestCounter", aid, [5])
    assert await actors.invoke(aid, "add", [1]) == 6
    with pytest.raises(ActorCallFailed, match=r"TestCounter\.fail_midway raised RuntimeError: failed after changing"):
        await actors.invoke(aid, "fail_midway")
    assert await actors.invoke(aid, "peek") == 6  # the +1000 before the raise did not survive


async def test_an_idle_actor_is_passivated_and_comes_back_with_its_state(server: Running):
    actors, aid = server.gateway.runtime.actors, new_id("count")
    await actors.bind("TestCounter", aid)
    assert await actors.invoke(aid, "add", [41]) == 41
    await poll(lambda: _passivated(actors, aid), timeout_s=30, what="passivated after 1 s idle")
    assert await actors.invoke(aid, "add", [1]) == 42  # reactivated from Redis


async def _passivated(actors, aid: str) -> bool:
    return await actors.live(aid) is None and await actors.store.holder(aid) is None


async def test_many_actors_share_a_few_host_processes(server: Running):
    actors, run = server.gateway.runtime.actors, uuid4().hex[:6]
    ids = [f"many-{run}-{i:04d}" for i in range(1000)]
    for chunk in range(0, len(ids), 250):
        await asyncio.gather(*(actors.bind("TestBatched", ids[i], [i]) for i in range(chunk, chunk + 250)))
    active = ids[:300]
    for chunk in range(0, len(active), 50):
        counts = await asyncio.gather(*(actors.invoke(a, "peek") for a in active[chunk:chunk + 50]))
        assert counts == list(range(chunk, chunk + len(counts)))  # each its own constructor's state
    hosts = await actors.hosts("TestBatched")
    assert len(hosts) == 2 and len({h["pid"] for h in hosts}) == 2  # the pool's two processes, no more
    held = {a for h in hosts for a in h["actors"]}
    assert set(active) <= held and all(h["rss_bytes"] > 0 for h in hosts)
    assert await actors.store.count() >= 1000


async def test_a_host_over_its_state_budget_passivates_the_least_recently_used(server: Running):
    runtime = server.gateway.runtime
    host = ActorHost(HostConfig(runtime.tasks.config, ("tests.algorithms",), state_budget_bytes=250 * 1024),
                     f"budget-{uuid4().hex[:6]}")  # in this process: its state is what the test reads
    ids = [new_id("heavy") for _ in range(4)]
    try:
        for n, aid in enumerate(ids):
            await runtime.actors.bind("TestLazy", aid, [n])  # this host has no override: every call
            assert await host.call(aid, "grow", [100], {}, uuid4().hex) == 100 * 1024
        held = await poll(lambda: _held_if(host, {ids[2], ids[3]}), timeout_s=10, what="two oldest passivated")
        assert held["active"] == 2
        first = await runtime.actors.get(ids[0])
        assert first.state_bytes > 100 * 1024 and await runtime.actors.store.holder(ids[0]) is None
        assert await host.call(ids[0], "peek", [], {}, uuid4().hex) == 0  # back, and another one out
        assert ids[0] in (await host.status())["actors"]
    finally:
        await host.close()
    assert (await host.status())["active"] == 0 and all([await runtime.actors.store.holder(a) is None
                                                        for a in ids])


async def _held_if(host: ActorHost, expected: set[str]) -> dict | None:
    status = await host.status()
    return status if set(status["actors"]) == expected else None


async def test_a_periodic_policy_writes_every_n_calls_or_after_its_interval(server: Running):
    actors, aid = server.gateway.runtime.actors, new_id("batched")
    await actors.bind("TestBatched", aid)  # every 3 writes, or 0.5 s after the first unsaved one
    assert [await actors.invoke(aid, "add", [1]) for _ in range(2)] == [1, 2]
    assert (await actors.get(aid)).version == 0  # two writes: nothing written yet
    assert await actors.invoke(aid, "add", [1]) == 3
    record = await actors.get(aid)  # the third was answered after its checkpoint
    assert record.version == 1 and record.state["count"] == 3 and record.calls == 3
    assert await actors.invoke(aid, "add", [1]) == 4
    written = await poll(lambda: _version_at_least(actors, aid, 2), timeout_s=10, what="the interval's checkpoint")
    assert written.state["count"] == 4 and written.calls == 4


async def test_a_registry_entry_can_make_a_template_checkpoint_only_on_passivation(server: Running):
    actors, aid = server.gateway.runtime.actors, new_id("lazy")
    await actors.bind("TestLazy", aid)  # the template says every call; tests/conftest.py's entry overrides it
    assert [await actors.invoke(aid, "add", [2]) for _ in range(5)][-1] == 10
    assert (await actors.get(aid)).tier == "none yet"
    assert await actors.passivate(aid) is True and await actors.passivate(aid) is False
    record = await actors.get(aid)
    assert record.version == 1 and record.state["count"] == 10 and await actors.store.holder(aid) is None
    assert await actors.invoke(aid, "add", [1]) == 11  # reactivated from that checkpoint


async def _version_at_least(actors, aid: str, version: int):
    record = await actors.get(aid)
    return record if record.version >= version else None


async def test_a_large_state_lives_in_the_object_store_and_delete_leaves_nothing(server: Running):
    runtime = server.gateway.runtime
    actors, aid = runtime.actors, new_id("big")
    await actors.bind("TestCounter", aid, [7])
    assert await actors.invoke(aid, "grow", [100]) == 100 * 1024  # past the 64 KiB kept in Redis
    record = await actors.get(aid)
    assert record.tier == "object store" and record.state is None and record.state_bytes > 100 * 1024
    stored, content_type = await runtime.objects.get(record.state_ref)
    assert content_type == "application/json" and json.loads(stored)["count"] == 7
    await poll(lambda: _passivated(actors, aid), timeout_s=30, what="passivated after 1 s idle")
    assert await actors.invoke(aid, "add", [1]) == 8  # reactivated from the object store
    assert await actors.get(aid) is not None and (await actors.get(aid)).state_ref != record.state_ref
    last_ref = (await actors.get(aid)).state_ref
    assert not await runtime.objects.exists(record.state_ref)  # the replaced state object is gone
    assert await actors.delete(aid) is True and await actors.delete(aid) is False
    redis = actors.store.redis
    assert [k async for k in redis.scan_iter(match=f"*{aid}*")] == []
    assert not await runtime.objects.exists(last_ref)
    with pytest.raises(UnknownActor):
        await actors.invoke(aid, "peek")


async def test_the_seeds_python_api_binds_invokes_fires_and_forgets_and_deletes(server: Running):
    from engines.builtin.account import Account

    aid = new_id()
    await Account.options(is_always_alive=True).bind(aid, name="Alice", balance=100)
    assert await api.invoke(aid, "deposit", 50) == 150
    assert await api.invoke(aid, "deposit", 5, is_sync=False) is None
    await poll(lambda: _balance_is(aid, 155), what="the fired call ran")
    assert (await api.get(aid)).options == {"is_always_alive": True}
    assert aid in [r.actor_id for r in await api.list("Account", 200)]
    assert await api.delete(aid) is True


async def _balance_is(aid: str, balance: float) -> bool:
    return (await api.get(aid)).state == {"name": "Alice", "CardID": "", "balance": balance}


async def test_over_mcp_a_tool_per_method_and_tools_to_bind_inspect_and_delete(server: Running):
    aid = new_id("player")
    async with http_session(server.url, server.auth) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"Account.deposit", "GamePlayer.update_position", "actor_bind", "actor_get", "actor_list",
                "actor_delete"} <= set(tools)
        assert tools["GamePlayer.get_info"].annotations.read_only_hint
        bound = await session.call_tool("actor_bind", {"template": "GamePlayer", "actor_id": aid,
                                                       "kwargs": {"player_id": aid, "items": 5}})
        assert not bound.is_error and bound.structured_content["template"] == "GamePlayer"
        moved = await session.call_tool("GamePlayer.update_position", {
            "actor_id": aid, "new_pos": {"x": 1, "y": 2, "z": 3}, "new_vel": {"x": 0, "y": 0, "z": 1}})
        assert moved.structured_content == {"actor_id": aid, "result": True}
        hurt = await session.call_tool("GamePlayer.take_damage", {"actor_id": aid, "amount": 30})
        assert hurt.structured_content["result"] == 70
        bad = await session.call_tool("GamePlayer.take_damage", {"actor_id": aid, "amount": -1})
        assert bad.is_error and "amount: must be > 0" in bad.content[0].text
        seen = await session.call_tool("actor_get", {"actor_id": aid})
        assert seen.structured_content["state"]["position"] == {"x": 1.0, "y": 2.0, "z": 3.0}
        resource = json.loads((await session.read_resource(f"actor://GamePlayer/{aid}")).contents[0].text)
        assert resource["state"]["health"] == 70 and resource["calls"] == 2
        deleted = await session.call_tool("actor_delete", {"actor_id": aid})
        gone = await session.call_tool("GamePlayer.get_info", {"actor_id": aid})
    assert deleted.structured_content == {"actor_id": aid, "deleted": True}
    assert gone.is_error and gone.structured_content["error"]["type"] == "unknown_actor"


async def test_the_seeds_rest_routes_as_its_clients_send_them(server: Running):
    aid = new_id()
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth) as http:
        registered = await http.post("/register", json={"template_name": "Account", "actor_id": aid,
                                                        "init_args": ["Alice", "ID001", 100]})
        again = await http.post("/register", json={"template_name": "Account", "actor_id": aid})
        by_position = await http.post("/invoke", json={"actor_id": aid, "actor_type": "Account",
                                                       "func_name": "deposit", "params": [50]})
        by_name = await http.post("/invoke", json={"actor_id": aid, "actor_type": "Account",
                                                   "func_name": "withdraw", "params": {"amount": 20}})
        typed = await http.post(f"/actors/Account/{aid}/get_info", json={})
        templates = (await http.get("/templates")).json()
        health = await http.get("/health")
        deleted = await http.post("/delete", json={"actor_id": aid, "actor_type": "Account"})
        missing = await http.post("/delete", json={"actor_id": aid, "actor_type": "Account"})
        unknown = await http.post("/invoke", json={"actor_id": aid, "actor_type": "Account", "func_name": "get_info"})
    assert registered.json() == {"result": "registered", "actor_id": aid, "template_name": "Account"}
    assert again.status_code == 409 and again.json()["detail"] == f"actor {aid!r} already exists"
    assert by_position.json() == {"result": 150.0} and by_name.json() == {"result": 130.0}
    assert typed.json() == {"result": "Name: Alice, CardID: ID001, Balance: 130.0"}
    assert {"name": "Account", "description": "A bank account: deposit, withdraw, and read its balance; one per "
            "actor id.", "methods": ["deposit", "get_info", "withdraw"]} in templates
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert deleted.json() == {"result": f"Actor {aid} deleted"}
    for answer in (missing, unknown):
        assert answer.status_code == 404 and answer.json()["detail"].startswith(f"no actor bound under id {aid!r}")
