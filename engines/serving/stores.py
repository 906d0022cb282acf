"""Which store a call's outputs and progress go to, looked up by id inside the replica.

Algorithm applications are shared by every gateway on a cluster, and gateways
may use different task queues (Redis, prefix, object store). A call carries
only its store's key; the replica asks a detached directory actor for that
key's :class:`~engines.config.StoreConfig` once and keeps it. So credentials
and signing secrets cross the cluster once per replica, not with every call.
"""

from __future__ import annotations

import asyncio

import ray

from engines.config import StoreConfig
from engines.errors import Unavailable

NAME, NAMESPACE = "algo-mcp-stores", "algo-mcp"


@ray.remote(num_cpus=0)
class StoreDirectory:
    """id → StoreConfig, for as long as the cluster runs."""

    def __init__(self) -> None:
        self._configs: dict[str, StoreConfig] = {}

    def register(self, config: StoreConfig) -> None:
        self._configs[config.key] = config

    def get(self, store_key: str) -> StoreConfig | None:
        return self._configs.get(store_key)


def register(config: StoreConfig) -> None:
    """Make ``config`` known cluster-wide (blocking: call it from a thread)."""
    directory = StoreDirectory.options(name=NAME, namespace=NAMESPACE, lifetime="detached",
                                       get_if_exists=True).remote()
    ray.get(directory.register.remote(config))


_known: dict[str, StoreConfig] = {}
_lock = asyncio.Lock()


async def lookup(store_key: str) -> StoreConfig:
    """The config registered under ``store_key``, asked of the directory once per process."""
    config = _known.get(store_key)
    if config is not None:
        return config
    async with _lock:
        if store_key not in _known:
            try:
                directory = ray.get_actor(NAME, namespace=NAMESPACE)
                found = await directory.get.remote(store_key)
            except ValueError:  # no directory: no gateway registered anything on this cluster
                found = None
            if found is None:
                raise Unavailable(f"the task store {store_key} is not registered on this cluster; "
                                  "start (or restart) a gateway that uses it")
            _known[store_key] = found
    return _known[store_key]
