"""Connect to Ray (or start a local one) and start Serve without its HTTP proxy.

The gateway calls deployments through handles only, so Serve's own proxy is
never started (it would also take port 8000, the gateway's default).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from engines.settings import Settings

log = logging.getLogger(__name__)

_TOKEN_FILE = Path.home() / ".ray" / "auth_token"


#: Serve's gRPC request path caps a call's input, and its result, at 4 MiB by default: below
#: what we accept (a 16 MB request body, 20 MB images), so a 6 MB image failed inside Ray.
#: Our own limits bound every input before it reaches Ray; the transport adds none.
#: Read by callers and replicas alike, so it is also passed to every replica (:data:`REPLICA_ENV`).
GRPC_MESSAGE_LIMIT = {"RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH": str(2**31 - 1)}
REPLICA_ENV = {"HF_HUB_OFFLINE": "1", **GRPC_MESSAGE_LIMIT}


def prepare_env(settings: Settings) -> None:
    """Environment Ray reads at import and start-up; set before ``import ray``."""
    # Ray reads "1"/"0"; the setting may come from .env, which Ray never sees.
    os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1" if settings.ray_serve_throughput_optimized else "0"
    # Not its direct ingress, though: that opens an HTTP proxy on port 8000 and a
    # port per replica, and we only ever call through handles.
    os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0")
    # Ray 2.60 turns token auth on for clusters it starts; a process joining one
    # by address must opt in too, with the token ``ray start`` left in ~/.ray.
    if settings.ray_address and (os.environ.get("RAY_AUTH_TOKEN") or _TOKEN_FILE.exists()):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for name, value in GRPC_MESSAGE_LIMIT.items():
        os.environ.setdefault(name, value)


@dataclass(frozen=True)
class Connection:
    """What :func:`connect` did, so :func:`disconnect` undoes exactly that."""

    initialized_here: bool
    started_cluster: bool


def connect(settings: Settings) -> Connection:
    """Join ``RAY_ADDRESS`` or start a local cluster (a no-op when Ray is already up)."""
    prepare_env(settings)
    import ray
    from ray import serve

    conn = Connection(initialized_here=not ray.is_initialized(),
                      started_cluster=not ray.is_initialized() and not settings.ray_address)
    if conn.initialized_here:
        # "local" always starts a fresh cluster, never a stale one ``ray start`` left behind.
        ray.init(address=settings.ray_address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=False)
        log.info("ray: %s", "started a local cluster" if conn.started_cluster else "joined the cluster")
    serve.start(proxy_location="Disabled")
    return conn


async def disconnect(conn: Connection) -> None:
    """Stop what we started; on a shared cluster leave the deployments to other gateways.

    Async because Serve's router runs in the caller's loop (throughput mode) and
    must be shut down from inside it.
    """
    import ray
    from ray import serve

    if conn.started_cluster:
        await serve.shutdown_async()
    if conn.initialized_here:
        ray.shutdown()
