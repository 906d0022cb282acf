"""Actor templates in the registry: where each one's actors run (its pool of hosts).

A template joins the registry as an entry ``{name, kind: actor, target, hosts,
num_cpus, num_gpus}`` (``target`` names the ``@actorless`` object), or by being
defined in a module the registry lists under ``modules:`` (then with the
default placement). Templates with the same placement share a pool of hosts.
An entry may also override the template's persistence (``checkpoint``,
``checkpoint_every``, ``checkpoint_every_s``, ``idle_timeout_s``) for this
deployment.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engines.actors.persistence import Checkpoint, Persistence
from engines.actors.template import TEMPLATES, ActorTemplate
from engines.algorithms.validation import describe
from engines.errors import RegistryError


class ActorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="the template's name")
    kind: Literal["actor"]
    target: str = Field(pattern=r"^[\w.]+:[\w.]+$", description="module:Name of the @actorless template")
    description: str = ""
    hosts: int = Field(2, ge=1, le=64, description="host processes its actors share")
    num_cpus: float = Field(0, ge=0, description="per host (0: hosts mostly wait on Redis; the actors' own work "
                                                "shares the node)")
    num_gpus: float = Field(0, ge=0, description="per host")
    checkpoint: Checkpoint | None = Field(None, description="overrides the template's checkpoint policy")
    checkpoint_every: int | None = Field(None, ge=1, description="periodic: checkpoint after this many writes")
    checkpoint_every_s: float | None = Field(None, gt=0, description="periodic: checkpoint this long after "
                                                                     "the first unsaved write")
    idle_timeout_s: float | None = Field(None, gt=0, description="overrides when an idle actor is passivated")

    @property
    def placement(self) -> tuple[int, float, float]:
        return self.hosts, self.num_cpus, self.num_gpus


@dataclass(frozen=True)
class ActorEntry:
    spec: ActorSpec
    template: ActorTemplate

    @property
    def name(self) -> str:
        return self.spec.name


def actor_entry(data: Any, where: str) -> ActorEntry:
    try:
        spec = ActorSpec.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{where}: " + "; ".join(describe(exc.errors(include_url=False)))) from None
    module_name, _, attr = spec.target.partition(":")
    try:
        template = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{where}: target: cannot import {spec.target!r} ({exc})") from None
    if not isinstance(template, ActorTemplate):
        raise RegistryError(f"{where}: target: {spec.target!r} is not an @actorless template")
    if template.name != spec.name:
        raise RegistryError(f"{where}: name: {spec.name!r} differs from the template's own name {template.name!r}")
    return ActorEntry(spec, replace(template, persistence=_persistence(spec, template.persistence, where)))


def _persistence(spec: ActorSpec, declared: Persistence, where: str) -> Persistence:
    """The template's persistence with the entry's overrides; a new ``checkpoint`` brings its own bounds."""
    chosen = declared
    if spec.checkpoint is not None:
        chosen = Persistence(spec.checkpoint, spec.checkpoint_every, spec.checkpoint_every_s, declared.idle_timeout_s)
    elif spec.checkpoint_every is not None or spec.checkpoint_every_s is not None:
        chosen = replace(declared, every_calls=spec.checkpoint_every, every_s=spec.checkpoint_every_s)
    if spec.idle_timeout_s is not None:
        chosen = replace(chosen, idle_timeout_s=spec.idle_timeout_s)
    return chosen.check(where)


def decorated_in(modules: Iterable[str], declared: set[str]) -> list[ActorEntry]:
    """Templates defined in ``modules`` and not declared in the file, with the default placement."""
    return [ActorEntry(ActorSpec(name=t.name, kind="actor", target=t.module_target), t)
            for t in TEMPLATES.values() if t.target.__module__ in set(modules) and t.name not in declared]
