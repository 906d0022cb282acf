"""Everything that runs on Ray: algorithm deployments, their client, the registry."""

from engines.algorithm import Algorithm
from engines.external import ExternalAPI
from engines.registry import AlgorithmSpec, Registry, algorithm

__all__ = ["Algorithm", "AlgorithmSpec", "ExternalAPI", "Registry", "algorithm"]
