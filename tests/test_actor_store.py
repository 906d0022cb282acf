"""Actor records against a real Redis-compatible server: binding, leases with fencing tokens, recorded
calls, delete. A host that lost its lease can write nothing."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from storage.actors import ActorStore, Elsewhere, Held
from tests.polling import poll
from tests.redis_fixture import redis_client_fixture, redis_server_fixture  # noqa: F401  (fixtures)


@pytest.fixture
def store(redis_client: Redis) -> ActorStore:
    import uuid

    return ActorStore(redis_client, prefix=f"actors_{uuid.uuid4().hex[:8]}")


async def test_binding_is_recorded_once_and_again_the_same_way_changes_nothing(store: ActorStore):
    assert await store.bind("a1", "Account", ["Alice"], {"balance": 1}, {}) == ("bound", "Account")
    assert await store.bind("a1", "Account", ["Alice"], {"balance": 1}, {}) == ("same", "Account")
    assert await store.bind("a1", "Account", ["Bob"], {}, {}) == ("conflict", "Account")
    assert await store.bind("a1", "GamePlayer", [], {}, {}) == ("conflict", "Account")
    record = await store.get("a1")
    assert (record.args, record.kwargs, record.version, record.tier) == (["Alice"], {"balance": 1}, 0, "none yet")


async def test_a_host_that_lost_its_lease_cannot_overwrite_newer_state(store: ActorStore):
    await store.bind("a1", "Account", [], {}, {})
    first = await store.acquire("a1", "host-0/1", lease_s=0.2)
    assert isinstance(first, Held)
    assert isinstance(await store.acquire("a1", "host-1/1", lease_s=5), Elsewhere)  # one activation at a time
    await poll(lambda: _none(store, "a1"), what="the first lease expired")
    second = await store.acquire("a1", "host-1/1", lease_s=5)
    assert isinstance(second, Held) and int(second.token) > int(first.token)
    assert await store.checkpoint("a1", "host-1/1", second.token, state='{"balance":7}', size=13,
                                  calls={"c2": 7}) is not None
    assert await store.checkpoint("a1", "host-0/1", first.token, state='{"balance":1}', size=13,
                                  calls={"c1": 1}) is None  # the stale host is fenced out
    record = await store.get("a1")
    assert record.state == {"balance": 7} and record.version == 1 and record.calls == 1
    assert await store.recall("a1", "c2") == (True, 7) and await store.recall("a1", "c1") == (False, None)


async def _none(store: ActorStore, actor_id: str) -> bool:
    return await store.holder(actor_id) is None


async def test_a_restarted_host_takes_its_former_incarnations_leases_over_under_a_new_token(store: ActorStore):
    await store.bind("a1", "Account", [], {}, {})
    old = await store.acquire("a1", "host-0/dead", lease_s=30)
    new = await store.acquire("a1", "host-0/alive", lease_s=30)
    assert isinstance(old, Held) and isinstance(new, Held) and new.token != old.token
    assert await store.renew("a1", "host-0/dead", old.token, 30) is False
    assert await store.checkpoint("a1", "host-0/dead", old.token, state="{}", size=2, calls={}) is None
    assert await store.holder("a1") == "host-0"


async def test_delete_leaves_no_key_behind(store: ActorStore, redis_client: Redis):
    await store.bind("a1", "Account", [], {}, {})
    held = await store.acquire("a1", "host-0/1", lease_s=30)
    await store.checkpoint("a1", "host-0/1", held.token, state_ref="actors/a1/state-x.json", size=99,
                           calls={"c1": 1})
    assert await store.delete("a1") == "actors/a1/state-x.json"
    assert await store.delete("a1") is False
    left = [k async for k in redis_client.scan_iter(match=f"{store.keys.prefix}:*a1*")]
    assert left == [] and await store.count() == 0


async def test_an_unbound_id_is_nowhere(store: ActorStore):
    assert await store.get("nobody") is None and await store.acquire("nobody", "host-0/1", 5) is None
    assert await store.delete("nobody") is False and await store.holder("nobody") is None


async def test_activations_are_counted_by_template_and_renewals_are_not(store: ActorStore):
    await store.bind("a1", "Account", [], {}, {})
    await store.bind("p1", "GamePlayer", [], {}, {})
    first = await store.acquire("a1", "host-0/1", lease_s=0.2)
    await store.acquire("a1", "host-0/1", lease_s=0.2)  # its own lease again: the same activation
    await store.acquire("p1", "host-0/1", lease_s=30)
    assert isinstance(await store.acquire("a1", "host-1/1", lease_s=5), Elsewhere)  # refused: no activation
    await poll(lambda: _none(store, "a1"), what="the first lease expired")
    second = await store.acquire("a1", "host-1/1", lease_s=5)
    assert isinstance(first, Held) and isinstance(second, Held)
    assert await store.activations() == {"Account": 2, "GamePlayer": 1}
