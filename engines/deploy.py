"""Registry entries → Ray Serve applications: the one place limits become options.

Each algorithm is its own Serve application (named after it) holding one
deployment of :class:`engines.replica.AlgorithmReplica`. A gateway that finds
an application already running with the same fingerprint reuses it, so any
number of gateways can share one cluster without restarting replicas.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from typing import Any

import ray
from ray import serve
from ray.serve import Application
from ray.serve.api import RunTarget, _run_many

from engines.cluster import REPLICA_ENV
from engines.errors import NotConfigured, Unavailable
from engines.external import ExternalAPI
from engines.registry import Entry, Registry
from engines.replica import AlgorithmReplica
from engines.settings import Settings
from engines.task_context import TaskQueueConfig
from engines.task_worker import TaskWorker

log = logging.getLogger(__name__)

DEPLOY_TIMEOUT_S = 300.0
TASK_WORKER_CPUS = 0.1
_POLL_S = 0.2
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # Serve colours the replica's name in its messages
#: read by every replica: media fields may name URLs, fetched through engines.safe_url
COMMON_SETTINGS = ("FETCH_ALLOWLIST",)


def task_worker_app_name(queue: TaskQueueConfig) -> str:
    """One worker application per task queue (Redis and prefix), so gateways on different
    queues can share a cluster without taking each other's worker."""
    return f"algo-mcp-task-worker-{_digest(queue.redis_url, queue.prefix)[:8]}"


def forwarded_env(entry: Entry, settings: Settings) -> dict[str, str]:
    """Settings an algorithm reads, passed to its replicas (they may run on other nodes)."""
    own = entry.cls.settings_used if issubclass(entry.cls, ExternalAPI) else ()
    env = {}
    for name in dict.fromkeys((*COMMON_SETTINGS, *own)):
        value = getattr(settings, name.lower(), None)
        if value is not None:
            env[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return env


def logging_config(settings: Settings) -> dict[str, Any]:
    """Replica logs at our level; Serve's line per request only at DEBUG (it costs ~5% of a cheap call)."""
    return {"log_level": settings.log_level, "enable_access_log": settings.log_level == "DEBUG"}


def deployment_options(entry: Entry, settings: Settings) -> dict[str, Any]:
    """Serve options for an entry; algorithm classes never see these."""
    spec = entry.spec
    env = {**REPLICA_ENV, **forwarded_env(entry, settings)}
    return {
        "name": spec.name,
        "logging_config": logging_config(settings),
        "num_replicas": spec.num_workers,
        "max_ongoing_requests": spec.per_replica_concurrency(settings.default_max_concurrency),
        "max_queued_requests": spec.max_queued,
        "ray_actor_options": {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus,
                              "runtime_env": {"env_vars": env}},
    }


def check_resources(registry: Registry) -> None:
    """Fail fast where Serve would wait forever in DEPLOYING for resources that do not exist."""
    total = ray.cluster_resources()
    gpus, cpus = total.get("GPU", 0.0), total.get("CPU", 0.0)
    for entry in registry:
        spec = entry.spec
        if spec.num_gpus > gpus:
            raise NotConfigured(
                f"{spec.name}: num_gpus {spec.num_gpus:g} asked for, but the Ray cluster has "
                f"{gpus:g} GPU(s); set num_gpus: 0 to run on CPU or add GPU nodes")
        if spec.num_cpus > cpus:
            raise NotConfigured(
                f"{spec.name}: num_cpus {spec.num_cpus:g} asked for, but the Ray cluster has "
                f"{cpus:g} CPU(s)")
    wanted = sum(e.spec.num_cpus * e.spec.num_workers for e in registry) + TASK_WORKER_CPUS
    if wanted > cpus:
        raise NotConfigured(
            f"the registry asks for {wanted:g} CPUs in all (num_cpus x num_workers, plus the task "
            f"worker), but the Ray cluster has {cpus:g}; lower num_cpus or add nodes")


def _app_status(name: str) -> tuple[str, str]:
    app = serve.status().applications.get(name)
    return (app.status.value, app.message) if app else ("NOT_STARTED", "")


async def _running_fingerprint(name: str) -> str | None:
    """What a running application was deployed from (a digest; secrets only ever hashed)."""
    status, _ = _app_status(name)
    if status != "RUNNING":
        return None
    try:
        handle = serve.get_deployment_handle(name, app_name=name)
        return await handle.fingerprint.remote()
    except Exception:  # an older or foreign deployment under this name: redeploy it
        return None


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


async def _wait_running(name: str, deadline: float) -> None:
    while True:
        status, message = _app_status(name)
        if status == "RUNNING":
            return
        if status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise Unavailable(f"{name}: deployment failed: {_failure(name, message)}")
        if time.monotonic() > deadline:
            raise Unavailable(f"{name}: not running after {DEPLOY_TIMEOUT_S:g} s ({status}: {message})")
        await asyncio.sleep(_POLL_S)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _algorithm_app(entry: Entry, settings: Settings) -> tuple[str, Application]:
    options = deployment_options(entry, settings)
    fp = _digest(entry.spec.model_dump(mode="json"), options)
    return fp, AlgorithmReplica.options(**options).bind(entry.spec.target, entry.spec.batch, fp,
                                                        entry.spec.prepare)


def _task_worker_app(settings: Settings, queue: TaskQueueConfig) -> tuple[str, Application]:
    """The worker knows no registry (it calls deployments by name), so gateways with different
    registries can share it."""
    secret = settings.callback_secret.get_secret_value() if settings.callback_secret else None
    args = (queue, settings.task_worker_concurrency, settings.heartbeat_interval_seconds,
            settings.heartbeat_ttl_seconds, settings.task_visibility_timeout_seconds, secret)
    env = {**REPLICA_ENV, "FETCH_ALLOWLIST": settings.fetch_allowlist or ""}
    fp = _digest(args, env, settings.task_workers, logging_config(settings))
    options = {"name": task_worker_app_name(queue), "num_replicas": settings.task_workers,
               "logging_config": logging_config(settings),
               "ray_actor_options": {"num_cpus": TASK_WORKER_CPUS, "runtime_env": {"env_vars": env}}}
    return fp, TaskWorker.options(**options).bind(*args, fingerprint=fp)


async def deploy_all(registry: Registry, settings: Settings, queue: TaskQueueConfig) -> None:
    """Deploy every algorithm and the task worker unless already running as declared; wait for all."""
    check_resources(registry)
    planned = [(entry.name, *_algorithm_app(entry, settings)) for entry in registry]
    planned.append((task_worker_app_name(queue), *_task_worker_app(settings, queue)))
    targets = []
    for name, fp, app in planned:
        if await _running_fingerprint(name) == fp:
            log.info("%s: already running as declared, reused", name)
            continue
        targets.append(RunTarget(target=app, name=name, route_prefix=None))
    if not targets:
        return
    # One controller round trip for all applications; we wait for them ourselves.
    _run_many(targets, wait_for_applications_running=False)
    deadline = time.monotonic() + DEPLOY_TIMEOUT_S
    await asyncio.gather(*(_wait_running(t.name, deadline) for t in targets))
    log.info("deployed %s", ", ".join(t.name for t in targets))


def readiness(registry: Registry, queue: TaskQueueConfig | None) -> dict[str, dict[str, str]]:
    """Per-algorithm (and task worker) Serve status for ``/healthz``."""
    apps = serve.status().applications
    out = {}
    for name in [*registry.names(), *([task_worker_app_name(queue)] if queue else [])]:
        app = apps.get(name)
        out[name] = {"status": app.status.value if app else "NOT_STARTED",
                     "message": app.message if app else ""}
    return out
