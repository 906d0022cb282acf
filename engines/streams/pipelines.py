"""Pipelines for the gateway: start, stop, list, inspect, peek; and the supervisor that runs them.

Every pipeline lives in Redis (``storage.pipelines``), so any gateway serves
every one. One gateway at a time (a Redis lease) supervises: each second it
makes the Ray actors of every running pipeline match what it should have (one
:class:`~engines.streams.consumer.PipelineMember` per consumer, named after the
pipeline and its spec, detached, restarted by Ray when killed) and scales the
count on the lag they report: up at once when the lag per consumer passes the
spec's target, down one at a time after ``scale_down_after_s`` below it, within
``min_consumers`` and ``max_consumers`` and never past the partition count.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from datetime import datetime
from typing import Any

from engines.algorithms.registry import Registry
from engines.config import StoreConfig, digest
from engines.errors import AlgoError, PipelineConflict, Starting, UnknownPipeline, ValidationFailed
from engines.settings import Settings
from engines.streams import topics
from engines.streams.backfill import BackfillSpec
from engines.streams.spec import PipelineSpec, S, parse_pipeline
from engines.tasks.queue import TaskQueue
from storage import TaskRecord
from storage.pipelines import PipelineStore

log = logging.getLogger(__name__)

NAMESPACE = "algo-mcp"
SUPERVISOR_LEASE_S = 5.0
#: a member still starting (a new worker process, joining its group) is asked again next round
ENSURE_S = 5.0
#: a member leaving its group finishes its batch first; past this it is ended anyway
CLOSE_S = 30.0


def member_prefix(store_id: str) -> str:
    """Members of the pipelines of one Redis and prefix (gateways of others may share the Ray cluster)."""
    return f"pipeline-{store_id[:8]}-"


def member_names(store_id: str, spec: PipelineSpec, count: int) -> list[str]:
    """Members are named after the spec too: a pipeline restarted with another spec gets new ones."""
    fingerprint = digest(spec.model_dump(mode="json"))[:8]
    return [f"{member_prefix(store_id)}{spec.name}-{fingerprint}-{i}" for i in range(count)]


class Pipelines:
    def __init__(self, settings: Settings, registry: Registry, tasks: TaskQueue) -> None:
        self.settings, self.registry, self.tasks = settings, registry, tasks
        self._store: PipelineStore | None = None
        self._config: StoreConfig | None = None
        self._below_since: dict[str, float] = {}
        self._removing: dict[str, asyncio.Task] = {}
        self._holder = f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"

    def open(self, store: PipelineStore, config: StoreConfig) -> None:
        """Called by the runtime once Redis is up."""
        self._store, self._config = store, config

    @property
    def store(self) -> PipelineStore:
        if self._store is None:
            raise Starting("the pipeline store", None)
        return self._store

    # -- the faces' operations --------------------------------------------------------

    async def check(self, data: Any, where: str = "pipeline", model: type[S] = PipelineSpec) -> S:  # type: ignore[assignment]
        """A spec that can run here: fields, the algorithm and its input fields, the broker, the topics."""
        spec = parse_pipeline(data, where, model).with_broker(self.settings.kafka_bootstrap_servers)
        wrong = spec.unknown_inputs(self.registry.get(spec.algorithm).cls.Input.model_fields)
        if wrong:
            raise ValidationFailed([f"{where}: {line}" for line in wrong])
        await self._topics(spec)
        return spec

    @staticmethod
    async def _topics(spec: PipelineSpec) -> int:
        """The input topic's partition count, once the output (and dead-letter) topics exist too."""
        assert spec.broker is not None
        count = await asyncio.to_thread(topics.partitions, spec.broker, spec.input_topic)
        outputs = [spec.output_topic, *([spec.dead_letter_topic] if spec.dead_letter_topic else [])]
        await asyncio.to_thread(topics.ensure, spec.broker, outputs, count)
        return count

    async def start(self, data: Any, source: str = "api") -> dict[str, Any]:
        """Start a pipeline (or find it running with the same spec); it runs until stopped."""
        spec = await self.check(data)
        dumped = spec.model_dump(mode="json", exclude_none=True)
        found = await self.store.get(spec.name)
        if found and found["status"] == "running":
            if found["spec"] == dumped:
                return found
            raise PipelineConflict(f"pipeline {spec.name!r} runs with another spec; stop it first, or start this "
                                   "one under another name")
        await self.store.save(spec.name, dumped, source, spec.scaling.min_consumers)
        await self.store.update(spec.name, partitions=await self._topics(spec))
        return await self._get(spec.name)

    async def backfill(self, data: Any) -> TaskRecord:
        """Queue a backfill (a bounded range, as a task), checked as a pipeline is."""
        spec = await self.check(data, "backfill", BackfillSpec)
        if isinstance(spec.start, datetime) and spec.start.timestamp() > time.time():
            raise ValidationFailed([f"start: {spec.start.isoformat()} is in the future: there is nothing to read yet"])
        payload = {"spec": spec.model_dump(mode="json", exclude_none=True),
                   "call_timeout_s": self.registry.get(spec.algorithm).spec.timeout_s}
        return await self.tasks.submit_job("backfill", spec.algorithm, payload, spec.timeout_s)

    async def stop(self, name: str) -> dict[str, Any]:
        """Stop it: its consumers leave the group after their batch (what they committed stays)."""
        await self._get(name)
        await self.store.update(name, status="stopped", consumers=0)
        return await self._get(name)

    async def list(self) -> list[dict[str, Any]]:
        return [_summary(r, await self.store.stats(r["name"])) for r in await self.store.all()]

    async def inspect(self, name: str, dead_letters: int = 10) -> dict[str, Any]:
        """The record, each live consumer's report, and the totals: lag per partition, rates, latency."""
        record = await self._get(name)
        members = await self.store.stats(name)
        return {**_summary(record, members), "spec": record["spec"], "members": members,
                "dead_letters": await self.store.last(name, "dead", dead_letters)}

    async def peek(self, name: str, n: int = 10) -> list[dict[str, Any]]:
        """The last ``n`` messages the pipeline produced, newest first."""
        await self._get(name)
        return await self.store.last(name, "out", n)

    async def _get(self, name: str) -> dict[str, Any]:
        found = await self.store.get(name)
        if found is None:
            raise UnknownPipeline(name, [r["name"] for r in await self.store.all()])
        return found

    async def declare(self) -> None:
        """The registry's pipelines, recorded if new or changed (a stopped one stays stopped)."""
        for spec in self.registry.pipelines:
            dumped = spec.model_dump(mode="json", exclude_none=True)
            found = await self.store.get(spec.name)
            if found is None or (found["source"] == "registry" and found["spec"] != dumped and
                                 found["status"] == "running"):
                await self.store.save(spec.name, dumped, "registry", spec.scaling.min_consumers)

    # -- the supervisor ---------------------------------------------------------------------

    async def supervise(self) -> None:
        """One round, in the gateway that holds the supervisor's lease (the runtime runs it every second)."""
        records = await self.store.all()
        if not records or not await self.store.lead(self._holder, SUPERVISOR_LEASE_S):
            return
        import ray

        wanted: set[str] = set()
        for record in records:
            if record["status"] != "running":
                continue
            try:
                wanted |= await self._keep(record)
            except AlgoError as err:
                await self.store.update(record["name"], error=err.message)
        running = await asyncio.to_thread(ray.util.list_named_actors, all_namespaces=True)
        assert self._config is not None
        ours = member_prefix(self._config.id)
        stale = [a["name"] for a in running if a["namespace"] == NAMESPACE and a["name"].startswith(ours)
                 and a["name"] not in wanted]
        for name in stale:  # in the background: a round never waits for a member's last batch
            if name not in self._removing:
                self._removing[name] = task = asyncio.create_task(self._remove(name))
                task.add_done_callback(lambda _, n=name: self._removing.pop(n, None))

    async def _keep(self, record: dict[str, Any]) -> set[str]:
        spec = PipelineSpec.model_validate(record["spec"]).with_broker(self.settings.kafka_bootstrap_servers)
        partitions = int(record.get("partitions") or 0)
        if not partitions:  # declared in the registry: its topics are checked (and made) once the broker answers
            partitions = await self._topics(spec)
            await self.store.update(spec.name, partitions=partitions)
        count = self._scaled(spec, record["consumers"], partitions, await self.store.stats(spec.name))
        if count != record["consumers"]:
            log.info("pipeline %s: %d consumer(s), was %d", spec.name, count, record["consumers"])
            await self.store.update(spec.name, consumers=count)
        assert self._config is not None
        names = member_names(self._config.id, spec, count)
        errors = await asyncio.gather(*(self._ensure(spec, name) for name in names), return_exceptions=True)
        failed = [f"{n}: {'still starting' if isinstance(e, TimeoutError) else f'{type(e).__name__}: {e}'}"
                  for n, e in zip(names, errors, strict=True) if isinstance(e, BaseException)]
        await self.store.update(spec.name, error="; ".join(failed)[:1000])
        return set(names)

    def _scaled(self, spec: PipelineSpec, current: int, partitions: int, stats: list[dict[str, Any]]) -> int:
        scaling = spec.scaling
        ceiling = max(scaling.min_consumers, min(scaling.max_consumers, partitions))
        current = min(max(current, scaling.min_consumers), ceiling)
        lag = sum(p["lag"] or 0 for s in stats for p in s["partitions"].values())
        target = min(max(math.ceil(lag / scaling.lag_per_consumer), scaling.min_consumers), ceiling)
        if target >= current:
            self._below_since.pop(spec.name, None)
            return target
        since = self._below_since.setdefault(spec.name, time.monotonic())
        if time.monotonic() - since < scaling.scale_down_after_s:
            return current
        self._below_since.pop(spec.name, None)
        return current - 1

    async def _ensure(self, spec: PipelineSpec, name: str) -> None:
        import ray

        from engines.streams.consumer import MemberConfig, PipelineMember

        entry = self.registry.get(spec.algorithm)
        assert self._config is not None and spec.broker is not None
        config = MemberConfig(spec.model_dump(mode="json"), name, self._config.redis_url, self._config.prefix,
                              self._config.key, entry.spec.timeout_s, self.settings.kafka_session_timeout_ms)
        secrets = {n: os.environ[n] for n in spec.broker.secret_names() if n in os.environ}
        member = ray.remote(PipelineMember).options(
            name=name, namespace=NAMESPACE, lifetime="detached", get_if_exists=True, max_restarts=-1,
            max_task_retries=0, num_cpus=self.settings.pipeline_consumer_cpus,
            runtime_env={"env_vars": secrets} if secrets else None).remote(config)
        await asyncio.wait_for(member.ensure.remote(), ENSURE_S)

    async def _remove(self, name: str) -> None:
        """Let the member leave its group cleanly, then end its actor."""
        import ray

        try:
            member = await asyncio.to_thread(ray.get_actor, name, NAMESPACE)
        except ValueError:
            return
        try:
            await asyncio.wait_for(member.close.remote(), CLOSE_S)
        except Exception as exc:  # a stuck member is ended anyway: its messages are redone from the last commit
            log.warning("pipeline member %s did not close cleanly (%s)", name, exc)
        ray.kill(member, no_restart=True)
        log.info("pipeline member %s removed", name)


def _summary(record: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the live members' reports."""
    lag = {p: v["lag"] for m in members for p, v in m["partitions"].items()}
    total = {k: sum(m.get(k, 0) for m in members) for k in ("consumed", "produced", "dead", "retries")}
    p50 = [m["p50_ms"] for m in members if m.get("p50_ms") is not None]
    p99 = [m["p99_ms"] for m in members if m.get("p99_ms") is not None]
    return {"name": record["name"], "status": record["status"], "source": record["source"],
            "input_topic": (record["spec"] or {}).get("input_topic"),
            "algorithm": (record["spec"] or {}).get("algorithm"),
            "output_topic": (record["spec"] or {}).get("output_topic"),
            "consumers": record["consumers"], "live_consumers": len(members),
            "lag": dict(sorted(lag.items(), key=lambda kv: int(kv[0]))),
            "total_lag": sum(v or 0 for v in lag.values()),
            "rate_in": round(sum(m.get("rate_in", 0) for m in members), 1),
            "rate_out": round(sum(m.get("rate_out", 0) for m in members), 1),
            "p50_ms": max(p50, default=None), "p99_ms": max(p99, default=None), **total,
            "errors": [e for e in [record["error"], *(m.get("last_error") for m in members)] if e],
            "created_at": record["created_at"], "updated_at": record["updated_at"]}
