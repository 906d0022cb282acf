"""The algorithm applications as a KubeRay ``RayService`` declares them (``deploy/kuberay/rayservice.yaml``).

Its ``serveConfigV2`` names one application per registry entry, each
``import_path: engines.serving.rayservice:app`` with ``args: {name: <entry>}``.
Serve calls :func:`app` inside the cluster, where the pods have the gateways'
environment, so the application is the one a gateway would deploy, fingerprint
included: gateways joining the cluster find it running as declared and deploy
nothing for it (``engines.serving.deploy.deploy``).
"""

# No ``from __future__ import annotations``: Serve reads the builder's annotation as a class to
# validate ``args`` with, and a string annotation would hand it the raw dict.

from pydantic import BaseModel, ConfigDict, Field
from ray.serve import Application

from engines.algorithms.registry import Registry
from engines.serving.deploy import AlgorithmApp
from engines.settings import Settings


class AppArgs(BaseModel):
    """An application's ``args`` in ``serveConfigV2``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the registry entry this application serves")


def app(args: AppArgs) -> Application:
    """Serve's application builder: the entry's application, as a gateway with these settings builds it."""
    settings = Settings()
    return AlgorithmApp(Registry.load(settings.algo_mcp_registry).get(args.name), settings).build()
