"""The engine layer: the algorithm contract and registry, and everything that runs them on Ray.

Importing it starts nothing and changes no environment; the gateway's
:class:`engines.runtime.Runtime` does that when it starts.
"""

from engines.algorithms.base import Algorithm
from engines.algorithms.config import AlgorithmConfig
from engines.algorithms.external import ExternalAPI
from engines.algorithms.registry import AlgorithmSpec, Registry, algorithm

__all__ = ["Algorithm", "AlgorithmConfig", "AlgorithmSpec", "ExternalAPI", "Registry", "algorithm"]
