"""Everything that runs on Ray: algorithm deployments, their client, the registry."""

# Ray Serve reads its request-path settings when it is first imported, so they
# are set here, before any module of ours imports it.
from engines.cluster import prepare_env
from engines.settings import get_settings

prepare_env(get_settings())


from engines.algorithm import Algorithm  # noqa: E402
from engines.external import ExternalAPI  # noqa: E402
from engines.registry import AlgorithmSpec, Registry, algorithm  # noqa: E402

__all__ = ["Algorithm", "AlgorithmSpec", "ExternalAPI", "Registry", "algorithm"]
