"""Applications on Ray Serve: the one place registry limits become options, and how apps are deployed.

Anything the runtime runs on Serve is an :class:`AppBuilder` (an algorithm, the
task worker, later an actor host or a pipeline), so a new kind joins
:func:`deploy` without editing it. Each application is named after what it
serves. One that already runs with the same fingerprint is reused, so any
number of gateways share one cluster without restarting replicas, and a warm
start deploys nothing. Applications deploy in waves (quick ones first, models
next, the task worker last) and each reports to the runtime's readiness as it
comes up or fails, so one that fails takes only its own tool down.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import ray
from ray import serve
from ray.serve import Application, RunTarget

from engines.algorithms.registry import AlgorithmSpec, Entry
from engines.config import digest
from engines.errors import Unavailable, ValidationFailed
from engines.loops import every
from engines.readiness import Readiness
from engines.serving.client import AlgorithmClient
from engines.serving.cluster import REPLICA_ENV
from engines.serving.replica import AlgorithmReplica
from engines.settings import Settings

log = logging.getLogger(__name__)

DEPLOY_TIMEOUT_S = 300.0
_POLL_S = 0.25
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # Serve colours the replica's name in its messages
#: read by every replica: media fields may name URLs, fetched through engines.net.safe_url
COMMON_SETTINGS = ("FETCH_ALLOWLIST",)
QUICK, MODELS, LAST = 0, 1, 2


@dataclass(frozen=True)
class Demand:
    """What an application asks of the cluster."""

    replicas: int
    cpus: float  # per replica
    gpus: float  # per replica


class AppBuilder(Protocol):
    """A Serve application the runtime deploys."""

    @property
    def name(self) -> str: ...

    @property
    def phase(self) -> str:
        """The readiness phase it reports to (its name, unless it stands for a role)."""
        ...

    @property
    def wave(self) -> int:
        """Lower waves deploy first (``QUICK``, ``MODELS``, ``LAST``)."""
        ...

    def demand(self) -> Demand: ...

    def fingerprint(self) -> str:
        """A digest of everything it is deployed with; a running app with the same one is reused."""
        ...

    def build(self) -> Application: ...


def logging_config(settings: Settings) -> dict[str, Any]:
    """Replica logs at our level; Serve's line per request only at DEBUG (it costs ~5% of a cheap call)."""
    return {"log_level": settings.log_level, "enable_access_log": settings.log_level == "DEBUG"}


def replica_env(settings: Settings) -> dict[str, str]:
    """What every replica reads from its environment (it may run on another node)."""
    env = dict(REPLICA_ENV)
    for name in COMMON_SETTINGS:
        value = getattr(settings, name.lower(), None)
        if value is not None:
            env[name] = str(value)
    return env


def deployment_options(entry: Entry, settings: Settings) -> dict[str, Any]:
    """Serve options for an entry; algorithm classes never see these. Replicas, concurrency, queue and
    batching (``user_config``) are the ones Serve changes on running replicas."""
    spec = entry.spec
    scaling: dict[str, Any] = {"num_replicas": spec.num_workers}
    if spec.autoscaling:
        scaling = {"autoscaling_config": {"min_replicas": spec.autoscaling.min, "max_replicas": spec.autoscaling.max,
                                          "initial_replicas": max(spec.autoscaling.min, 1),
                                          "target_ongoing_requests": spec.autoscaling.target_ongoing_requests,
                                          "upscale_delay_s": spec.autoscaling.upscale_delay_s,
                                          "downscale_delay_s": spec.autoscaling.downscale_delay_s}}
    return {
        "name": spec.name,
        "logging_config": logging_config(settings),
        **scaling,
        "max_ongoing_requests": spec.per_replica_concurrency(settings.default_max_concurrency),
        "max_queued_requests": spec.max_queued,
        "user_config": {"batch": spec.batch.model_dump() if spec.batch else None},
        "ray_actor_options": {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus,
                              "runtime_env": {"env_vars": replica_env(settings)}},
    }


def code_version(entry: Entry) -> str:
    """What a replica is built from: the algorithm's code, its target, media preparation and config.

    Serve's ``serve.run`` gives every run a new random version, so any change
    (even a queue length) replaced every replica: a model reloaded to change a
    limit. With this version, Serve restarts replicas only when it changes (or
    their resources do) and applies the rest to the running ones.
    """
    spec, module = entry.spec, sys.modules[entry.cls.__module__]
    source = Path(module.__file__).read_bytes() if getattr(module, "__file__", None) else b""
    return digest(spec.target, spec.prepare, entry.config.revealed(), hashlib.sha256(source).hexdigest())


@dataclass(frozen=True)
class AlgorithmApp:
    """One registered algorithm as its own Serve application."""

    entry: Entry
    settings: Settings

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def phase(self) -> str:
        return self.entry.name

    @property
    def wave(self) -> int:
        return MODELS if self.entry.cls.starts_slowly() else QUICK

    def demand(self) -> Demand:
        spec = self.entry.spec
        return Demand(spec.num_workers, spec.num_cpus, spec.num_gpus)

    def fingerprint(self) -> str:
        return digest(self.entry.spec.model_dump(mode="json"), deployment_options(self.entry, self.settings),
                      self.entry.config.revealed())

    def build(self) -> Application:
        spec, options = self.entry.spec, deployment_options(self.entry, self.settings)
        options["user_config"] |= {"fingerprint": self.fingerprint()}
        # ``version`` left Serve's public options; _internal is how Serve's own config deploys pass it
        return AlgorithmReplica.options(**options, version=code_version(self.entry), _internal=True).bind(
            spec.target, spec.prepare, self.entry.config)


def unfit(apps: list[AppBuilder], resources: dict[str, float]) -> dict[str, str]:
    """Why each application that cannot be placed cannot (Serve would wait in DEPLOYING forever)."""
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
    reasons, placed = {}, 0.0
    for app in apps:
        need = app.demand()
        total = need.cpus * need.replicas
        if need.gpus > gpus:
            reasons[app.name] = (f"num_gpus {need.gpus:g} asked for, but the Ray cluster has {gpus:g} GPU(s); "
                                 "set num_gpus: 0 to run on CPU or add GPU nodes")
        elif need.cpus > cpus:
            reasons[app.name] = f"num_cpus {need.cpus:g} asked for, but the Ray cluster has {cpus:g} CPU(s)"
        elif placed + total > cpus:
            reasons[app.name] = (f"the applications ask for {placed + total:g} CPUs in all by this one (num_cpus x "
                                 f"num_workers), but the Ray cluster has {cpus:g}; lower num_cpus or add nodes")
        else:
            placed += total
    return reasons


def statuses(names: list[str]) -> dict[str, dict[str, Any]]:
    """Serve's status, message and running replicas of each application (blocking)."""
    apps = serve.status().applications
    return {name: {"status": apps[name].status.value if name in apps else "NOT_STARTED",
                   "message": apps[name].message if name in apps else "",
                   "replicas": sum(d.replica_states.get("RUNNING", 0) for d in apps[name].deployments.values())
                   if name in apps else 0} for name in names}


def _failure(name: str, app_message: str) -> str:
    """Why an application failed, in one line: the error its replicas raised, not Serve's whole
    traceback (the application's own message only says which deployments failed)."""
    app = serve.status().applications.get(name)
    details = [d.message for d in (app.deployments.values() if app else ()) if d.message]
    text = _ANSI_ESCAPE.sub("", details[0] if details else app_message)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:  # Serve's summary, the replica's traceback, its error last
        return f"{lines[-1]} ({lines[0].split('. ')[0]}; the traceback is in the Serve logs)"
    return lines[0] if lines else app_message


async def _running_fingerprint(client: AlgorithmClient, name: str) -> str | None:
    """What a running application was deployed from (a digest; secrets only ever hashed)."""
    try:
        return await client.handle(name).fingerprint.remote()
    except Exception:  # an older or foreign deployment under this name: redeploy it
        return None


async def _settle(apps: list[AppBuilder], readiness: Readiness) -> None:
    """Report each application as it comes up or fails."""
    phases = {app.name: app.phase for app in apps}
    pending = set(phases)
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S

    async def check() -> bool:
        now = await asyncio.to_thread(statuses, sorted(pending))
        for name, status in now.items():
            if status["status"] == "RUNNING":
                readiness.ready(phases[name])
            elif status["status"] in ("DEPLOY_FAILED", "UNHEALTHY"):
                reason = await asyncio.to_thread(_failure, name, status["message"])
                readiness.failed(phases[name], f"deployment failed: {reason}")
            elif time.monotonic() > deadline:
                readiness.failed(phases[name], f"not running after {DEPLOY_TIMEOUT_S:g} s ({status['status']}: "
                                               f"{status['message']})")
            else:
                continue
            pending.discard(name)
        return not pending

    await every(_POLL_S, check, what="watching deployments")


async def deploy(apps: list[AppBuilder], readiness: Readiness, client: AlgorithmClient) -> None:
    """Deploy every application unless it already runs as declared, wave by wave; ``client``
    asks running ones for their fingerprint (its handles are the gateway's, closed with it)."""
    resources = await asyncio.to_thread(ray.cluster_resources)
    reasons = unfit(apps, resources)
    for app in apps:
        if app.name in reasons:
            readiness.failed(app.phase, reasons[app.name])
    placeable = [app for app in apps if app.name not in reasons]
    running = await asyncio.to_thread(statuses, [app.name for app in placeable])
    for wave in sorted({app.wave for app in placeable}):
        todo = []
        for app in (a for a in placeable if a.wave == wave):
            running_as_declared = running[app.name]["status"] == "RUNNING" and \
                await _running_fingerprint(client, app.name) == app.fingerprint()
            if running_as_declared:
                log.info("%s: already running as declared, reused", app.name)
                readiness.ready(app.phase, typical=False)
            else:
                todo.append(app)
        if not todo:
            continue
        for app in todo:
            readiness.starting(app.phase)
        targets = [RunTarget(target=app.build(), name=app.name, route_prefix=None) for app in todo]
        try:  # one controller round trip for the whole wave; we watch them come up ourselves
            await asyncio.to_thread(serve.run_many, targets, wait_for_ingress_deployment_creation=False,
                                    wait_for_applications_running=False)
        except Exception as exc:
            readiness.fail_unsettled([app.phase for app in todo], f"could not deploy: {type(exc).__name__}: {exc}")
            continue
        await _settle(todo, readiness)
        log.info("deployed %s", ", ".join(app.name for app in todo))


async def update(app: AlgorithmApp, running: AlgorithmSpec) -> None:
    """Deploy ``app``'s new limits over its running application (deployed as ``running``) and wait
    until it runs them. Replicas it adds must fit the cluster's free resources now: Serve would
    otherwise wait for them for ever."""
    spec, before = app.entry.spec, AlgorithmApp(replace(app.entry, spec=running), app.settings).demand()
    more = app.demand().replicas - before.replicas
    if more > 0:
        free = await asyncio.to_thread(ray.available_resources)
        for resource, each in (("CPU", spec.num_cpus), ("GPU", spec.num_gpus)):
            if more * each > free.get(resource, 0.0) + 1e-9:
                field = "autoscaling.min" if spec.autoscaling else "num_workers"
                raise ValidationFailed([f"{field}: {more} more replica(s) need {more * each:g} {resource}(s), but "
                                        f"the Ray cluster has {free.get(resource, 0.0):g} free"])
    target = RunTarget(target=app.build(), name=app.name, route_prefix=None)
    await asyncio.to_thread(serve.run_many, [target], wait_for_ingress_deployment_creation=False,
                            wait_for_applications_running=False)
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S

    async def applied() -> bool:  # Serve marks it DEPLOYING as it takes the new target, RUNNING once done
        status = (await asyncio.to_thread(statuses, [app.name]))[app.name]
        if status["status"] in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise Unavailable(f"{app.name}: the change failed: "
                              f"{await asyncio.to_thread(_failure, app.name, status['message'])}")
        if time.monotonic() > deadline:
            raise Unavailable(f"{app.name}: the change is not applied after {DEPLOY_TIMEOUT_S:g} s "
                              f"({status['status']}: {status['message']})")
        return status["status"] == "RUNNING"

    while not await applied():  # not ``every``: a failure here is the caller's answer, not a retry
        await asyncio.sleep(_POLL_S)
