"""Connect to Ray and start Serve without its HTTP proxy; start a local cluster (for the keeper).

Gateways always join a cluster by address: ``RAY_ADDRESS``, or the local
cluster the keeper (``engines.local_cluster``) runs for their data folder. They
call deployments through handles only, so Serve's own proxy is never started
(it would also take port 8000, the gateway's default).
"""

from __future__ import annotations

import logging
import os
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
    """Environment Ray reads when imported and started: call it before ``import ray``.

    Processes started by the local cluster (the Serve controller, replicas)
    inherit it from the keeper, which calls this too.
    """
    # Ray reads "1"/"0"; the setting may come from .env, which Ray never sees.
    os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1" if settings.ray_serve_throughput_optimized else "0"
    # Not its direct ingress, though: that opens an HTTP proxy on port 8000 and a
    # port per replica, and we only ever call through handles.
    os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Gateways join clusters by address only: a Ray call made after leaving (a Serve router's
    # late callback at shutdown) must fail, not start a whole local cluster in the gateway.
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    for name, value in GRPC_MESSAGE_LIMIT.items():
        os.environ.setdefault(name, value)
    # Ray 2.60 turns token auth on for clusters it starts, and a process joining one by address
    # must opt in too: always for the keeper's local cluster (it inherits this, so both agree),
    # and for RAY_ADDRESS when ``ray start`` left a token in ~/.ray.
    if not settings.ray_address or os.environ.get("RAY_AUTH_TOKEN") or _TOKEN_FILE.exists():
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def start_local() -> str:
    """Start a local cluster owned by this process (the keeper); its GCS address."""
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             configure_logging=False)
    return ray.get_runtime_context().gcs_address


def connect(address: str) -> None:
    """Join the cluster at ``address`` and make sure Serve runs there (blocking; a no-op if joined)."""
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False)
        log.info("ray: joined the cluster at %s", address)
    serve.start(proxy_location="Disabled")


def disconnect() -> None:
    """Leave the cluster; its deployments stay for other gateways (and the next start)."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
