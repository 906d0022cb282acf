"""Actors: algo-mcp's hosts against the Actorless seed's design (``_seed_actors.py``), in one run.

The GamePlayer workload at the upstream's shape: 125 players of its state size
(an inventory of 3,000 items, about 270 KB as JSON), room for 100 resident,
each request picking a player uniformly or by a zipfian law and a method (half
``get_info`` reads, the rest ``update_position`` and ``use_skill`` writes), 8
or 32 requests in flight. Both sides are driven over HTTP with the seed's
``POST /invoke`` body, from a load process of their own (as agents' requests
come from elsewhere), and algo-mcp keeps its default policy: a checkpoint after
every writing call, before its answer. Then, with every player resident, the
seed's best case; the activation of a passivated player from Redis; and what
an active actor costs in memory with 10,000 bound and 1,000 active.

Goals: ≥ 100x the seed's throughput with eviction in play at p99 ≤ 50 ms; at
least its best case with all resident at p99 ≤ 50 ms; activation p50 ≤ 10 ms;
≤ 1 MB per active actor beyond its state.

Run from the repo root: ``python bench/bench_actors.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import yaml
from _common import Sample, Stats, note, print_table, run, serving
from _seed_actors import SeedFront
from redis.asyncio import Redis

from engines.algorithms.registry import Registry
from engines.collector import collect_on_schedule
from engines.settings import Settings
from mcp_server.app import build_gateway
from mcp_server.cli import event_loop_factory

PLAYERS, RESIDENT, ITEMS, HOSTS = 125, 100, 3000, 2
IDS = [f"player-{i:03d}" for i in range(PLAYERS)]
OURS_N, SEED_N = 2000, 150  # requests per row (the seed's rows take seconds per miss)
ROWS = [("uniform", 8, 11), ("uniform", 32, 12), ("zipfian", 8, 13), ("zipfian", 32, 14)]  # law, in flight, seed
THROUGHPUT_GOAL, P99_GOAL_MS, ACTIVATION_GOAL_MS, MEMORY_GOAL_MB = 100.0, 50.0, 10.0, 1.0
ZIPF_S = 1.1

Pick = Callable[[], str]


def picker(ids: list[str], law: str, rng: random.Random) -> Pick:
    if law == "uniform":
        return lambda: rng.choice(ids)
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(len(ids))]
    return lambda: rng.choices(ids, weights)[0]


def request(rng: random.Random, actor_id: str) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.5:
        method, params = "get_info", {}
    elif roll < 0.8:
        method, params = "update_position", {"new_pos": {"x": rng.random(), "y": 1, "z": 2},
                                             "new_vel": {"x": 0, "y": 0, "z": 1}}
    else:
        method, params = "use_skill", {"skill_id": f"skill-{rng.randrange(5)}"}
    return {"actor_id": actor_id, "actor_type": "GamePlayer", "func_name": method, "params": params}


async def drive(url: str, ids: list[str], law: str, n: int, in_flight: int, seed: int) -> Sample:
    """``n`` requests, ``in_flight`` at a time (closed loop); every answer checked. aiohttp, not httpx:
    httpx spends about 2.5 ms of CPU a request, more than the server it would measure."""
    rng, sample, left = random.Random(seed), Sample(), iter(range(n))
    pick = picker(ids, law, rng)

    async def worker(http: aiohttp.ClientSession) -> None:
        for _ in left:
            body = request(rng, pick())
            started = time.perf_counter()
            async with http.post(f"{url}/invoke", json=body) as answer:
                await answer.read()
                sample.latencies_s.append(time.perf_counter() - started)
                answer.raise_for_status()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(in_flight)))
        sample.wall_s = time.perf_counter() - began
    return sample


def _drive_here(*args: Any) -> Sample:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(drive(*args))


class Load:
    """The requests, from a process of their own: the served side has its event loop to itself."""

    def __init__(self) -> None:
        self.pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"))

    async def row(self, url: str, ids: list[str], law: str, n: int, in_flight: int, seed: int) -> Stats:
        loop = asyncio.get_running_loop()
        return (await loop.run_in_executor(self.pool, _drive_here, url, ids, law, n, in_flight, seed)).stats()

    def close(self) -> None:
        self.pool.shutdown()


def registry_file(tmp: Path) -> Path:
    path = tmp / "algorithms.yaml"
    path.write_text(yaml.safe_dump([{"name": "GamePlayer", "kind": "actor", "hosts": HOSTS,
                                     "target": "engines.builtin.game_player:GamePlayer"}]))
    return path


async def prime(url: str, ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        for actor_id in ids:
            (await http.post("/invoke", json={"actor_id": actor_id, "actor_type": "GamePlayer",
                                              "func_name": "get_info", "params": {}})).raise_for_status()


def goal_cells(ratio: float, goal: float, p99_ms: float) -> list[str]:
    met = ratio >= goal and p99_ms <= P99_GOAL_MS
    return [f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x", f"≥ {goal:g}x, p99 ≤ {P99_GOAL_MS:g} ms "
            f"{'✓' if met else '✗'}"]


@dataclass
class Side:
    """One design's measurements: the rows with eviction (by row), all resident, an activation's p50."""

    evicting: dict[tuple[str, int], Stats] = field(default_factory=dict)
    resident: Stats | None = None
    resident_players: int = 0
    activation_ms: dict[int, float] = field(default_factory=dict)  # by the player's inventory size


async def evicting_rows(side: Side, load: Load, url: str, n: int, who: str) -> None:
    for law, in_flight, rng_seed in ROWS:
        note(f"{who}: {law}, {in_flight} in flight")
        side.evicting[law, in_flight] = await load.row(url, IDS, law, n, in_flight, rng_seed)


async def resident_row(side: Side, load: Load, url: str, resident: list[str], who: str) -> None:
    note(f"{who}: only the {len(resident)} resident players, 32 in flight")
    side.resident, side.resident_players = await load.row(url, resident, "uniform", OURS_N, 32, 21), len(resident)


async def ours(stack: AsyncExitStack, tmp: Path, load: Load) -> tuple[Side, str]:
    """algo-mcp alone on the machine: the rows, then activations; the Redis URL, for the seed's side."""
    side = Side()
    settings = Settings(log_level="WARNING", data_dir=tmp / "ours", actor_max_active=RESIDENT // HOSTS)
    gateway = build_gateway(settings, Registry.load(registry_file(tmp)))
    url = await stack.enter_async_context(serving(gateway.http_app()))
    await gateway.runtime.started()
    actors = gateway.runtime.actors
    note(f"algo-mcp: binding {PLAYERS} players ({ITEMS} items each) and priming them")
    for actor_id in IDS:
        await actors.bind("GamePlayer", actor_id, [actor_id], {"items": ITEMS})
    await prime(url, IDS)
    await evicting_rows(side, load, url, OURS_N, "algo-mcp")
    # the players resident after those rows (each host within its room) are the all-resident row's
    await resident_row(side, load, url, sorted(a for h in await actors.hosts("GamePlayer") for a in h["actors"]),
                       "algo-mcp")
    note("algo-mcp: activations of passivated players, full-size and small")
    for items in (ITEMS, 20):
        players = [f"cold-{items}-{i:02d}" for i in range(30)]
        for actor_id in players:
            await actors.bind("GamePlayer", actor_id, [actor_id], {"items": items})
            await actors.invoke(actor_id, "use_skill", ["warm-up"])
            assert await actors.passivate(actor_id)
        took = []
        for actor_id in players:
            started = time.perf_counter()
            await actors.invoke(actor_id, "get_info")
            took.append((time.perf_counter() - started) * 1e3)
        side.activation_ms[items] = statistics.median(took)
    return side, gateway.runtime.tasks.config.redis_url


async def seed(stack: AsyncExitStack, redis_url: str, load: Load) -> tuple[Side, float]:
    """The seed's design alone: the same rows, its activation, and the memory of one actor's process."""
    side = Side()
    redis = Redis.from_url(redis_url)
    stack.push_async_callback(redis.aclose)
    front = SeedFront(redis, RESIDENT, ITEMS)
    stack.push_async_callback(front.close)
    url = await stack.enter_async_context(serving(front.app()))
    note(f"seed design: priming {PLAYERS} actor processes, {RESIDENT} resident (minutes)")
    await prime(url, IDS)
    await evicting_rows(side, load, url, SEED_N, "seed design")
    await resident_row(side, load, url, list(front.resident), "seed design")
    note("seed design: 5 evicted players started again")
    took = []
    for actor_id in [a for a in IDS if a not in front.resident][:5]:
        started = time.perf_counter()
        await front.invoke(actor_id, "get_info", {})
        took.append((time.perf_counter() - started) * 1e3)
    side.activation_ms[ITEMS] = statistics.median(took)
    process_mb = statistics.mean(await asyncio.gather(*(h.rss_bytes.remote() for h in front.resident.values())))
    return side, process_mb / 1e6


async def memory(stack: AsyncExitStack, tmp: Path, seed_mb: float) -> list[str]:
    """MB the hosts grow per active player, 10,000 bound and 1,000 activated (room for all)."""
    gateway = build_gateway(Settings(log_level="WARNING", data_dir=tmp / "memory"), Registry.load(registry_file(tmp)))
    await stack.enter_async_context(serving(gateway.http_app()))
    await gateway.runtime.started()
    actors = gateway.runtime.actors
    note("memory: 10,000 bound, 1,000 activated")
    bound = [f"bound-{i:05d}" for i in range(10_000)]
    for chunk in range(0, len(bound), 500):
        await asyncio.gather(*(actors.bind("GamePlayer", a, [a], {"items": 20}) for a in bound[chunk:chunk + 500]))
    before = sum(h["rss_bytes"] for h in await actors.hosts("GamePlayer"))
    for chunk in range(0, 1000, 50):
        await asyncio.gather(*(actors.invoke(a, "get_info") for a in bound[chunk:chunk + 50]))
    hosts = await actors.hosts("GamePlayer")
    after = sum(h["rss_bytes"] for h in hosts)
    assert sum(h["active"] for h in hosts) == 1000, "every activated player should still be active"
    per_actor_mb = (after - before) / 1000 / 1e6
    state_mb = len(json.dumps((await actors.live(bound[0]))["state"])) / 1e6
    met = per_actor_mb - state_mb <= MEMORY_GOAL_MB
    return [f"{seed_mb:.0f}", f"{per_actor_mb:.3f}", f"{state_mb:.3f}",
            f"≤ {MEMORY_GOAL_MB:g} MB beyond the state {'✓' if met else '✗'}"]


async def main() -> None:
    collect_on_schedule()  # as `algo-mcp serve` does for the gateway (this process serves it here)
    load = Load()
    with tempfile.TemporaryDirectory(prefix="algo-mcp-bench-") as tmp:
        try:
            async with AsyncExitStack() as stack:
                mine, redis_url = await ours(stack, Path(tmp), load)
                async with AsyncExitStack() as seed_stack:
                    theirs, seed_mb = await seed(seed_stack, redis_url, load)
            async with AsyncExitStack() as stack:
                footprint = await memory(stack, Path(tmp), seed_mb)
            note("shutting down")
        finally:
            load.close()
    m, t = mine.resident, theirs.resident
    assert m is not None and t is not None
    ceiling = m.calls_per_s  # algo-mcp with no activation to pay: what this machine serves at best

    def ceiling_cell(in_flight: int, seed_rate: float) -> str:
        """The best this machine allows: the all-resident rate, and the mean latency a closed loop of
        ``in_flight`` must then have (Little's law: in flight / rate)."""
        return f"{ceiling / seed_rate:.0f}x, ≥ {in_flight / ceiling * 1e3:.0f} ms"

    rows = []
    for law, in_flight, _ in ROWS:
        e, f = mine.evicting[law, in_flight], theirs.evicting[law, in_flight]
        rows.append([f"{law}, {in_flight} in flight, {PLAYERS} players / {RESIDENT} resident",
                     f"{f.calls_per_s:.1f}", f"{f.p99_ms:.0f}", f"{e.calls_per_s:.0f}", f"{e.p99_ms:.1f}",
                     *goal_cells(e.calls_per_s / f.calls_per_s, THROUGHPUT_GOAL, e.p99_ms),
                     ceiling_cell(in_flight, f.calls_per_s)])
    rows.append([f"uniform, 32 in flight, only resident players ({mine.resident_players} / "
                 f"{theirs.resident_players})", f"{t.calls_per_s:.0f}", f"{t.p99_ms:.0f}", f"{m.calls_per_s:.0f}",
                 f"{m.p99_ms:.1f}", *goal_cells(m.calls_per_s / t.calls_per_s, 1, m.p99_ms),
                 ceiling_cell(32, t.calls_per_s)])
    print(f"\nActors: GamePlayer over HTTP (`POST /invoke`, the seed's body), from a load process, each design "
          f"alone on the machine; algo-mcp: {HOSTS} hosts, a checkpoint after every writing call; seed design: a "
          f"Ray actor process per id, LRU residency, state pickled to Redis on eviction, one request at a time. "
          f"{OURS_N} requests per algo-mcp row, {SEED_N} per seed row with eviction.\n")
    print_table(["workload", "seed req/s", "seed p99 ms", "algo-mcp req/s", "algo-mcp p99 ms", "throughput ratio",
                 "goal", "ceiling here: ratio, mean latency"], rows)
    print("\nActivation of a passivated player (p50 of 30; the seed's: of 5 evicted players)\n")
    print_table(["player", "seed ms", "algo-mcp ms (from Redis)", "goal"], [
        [f"{items} items", f"{theirs.activation_ms[items]:.0f}" if items in theirs.activation_ms else "",
         f"{ms:.1f}", f"≤ {ACTIVATION_GOAL_MS:g} ms {'✓' if ms <= ACTIVATION_GOAL_MS else '✗'}"]
        for items, ms in mine.activation_ms.items()])
    print("\nMemory per active player, 10,000 bound / 1,000 active (20-item players)\n")
    print_table(["seed MB (a process)", "algo-mcp MB (host growth)", "its state as JSON, MB", "goal"], [footprint])


if __name__ == "__main__":
    run(main, loop_factory=event_loop_factory())
