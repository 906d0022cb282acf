"""The registry: one entry per algorithm, the single source of truth for it.

Entries come from ``algorithms.yaml`` (or the file named by
``ALGO_MCP_REGISTRY``) and from the :func:`algorithm` decorator. Loading
checks every field and imports every target, so a wrong entry stops start-up
with a message naming the entry and the field instead of failing on the first
call.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engines.actors.spec import ActorEntry, actor_entry, decorated_in
from engines.algorithms.base import Algorithm
from engines.algorithms.config import AlgorithmConfig
from engines.algorithms.validation import describe, validate_input
from engines.errors import RegistryError, UnknownAlgorithm, ValidationFailed
from engines.media.resolve import media_plan
from engines.streams.spec import PipelineSpec, parse_pipeline

Kind = Literal["local", "external"]
Mode = Literal["sync", "async", "auto"]


class BatchSpec(BaseModel):
    """Dynamic batching across concurrent calls within one replica."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(ge=1, le=1024)
    batch_wait_timeout_s: float = Field(0.005, ge=0, le=10)


class AutoscalingSpec(BaseModel):
    """Serve autoscaling of an algorithm's replicas on the calls each one has in flight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(1, ge=0, le=256, description="replicas kept when idle (0: scale to zero, a cold start)")
    max: int = Field(ge=1, le=256, description="replicas at most")
    target_ongoing_requests: float = Field(2, gt=0, description="calls in flight per replica Serve aims for")
    upscale_delay_s: float = Field(30, ge=0, description="load must stay above target this long to add replicas")
    downscale_delay_s: float = Field(600, ge=0, description="load must stay below target this long to remove some")

    @model_validator(mode="after")
    def _check(self) -> AutoscalingSpec:
        if self.min > self.max:
            raise ValueError(f"min: must be <= max ({self.max}) (got {self.min})")
        return self


class AlgorithmSpec(BaseModel):
    """What the registry knows about one algorithm: identity, limits, placement."""

    # validate_default: an omitted num_gpus is 0.0 like a written one, so fingerprints agree
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="tool name, REST path, deployment")
    kind: Kind
    target: str = Field(pattern=r"^[\w.]+:[\w.]+$", description="module:Class of the algorithm")
    title: str | None = Field(None, max_length=100, description="a human name for client UIs (default: from name)")
    description: str = ""
    mode: Mode = "sync"
    max_concurrency: int | None = Field(None, ge=1, description="global limit, all replicas together")
    num_workers: int = Field(1, ge=1, le=256)
    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)
    batch: BatchSpec | None = None
    autoscaling: AutoscalingSpec | None = Field(
        None, description="replicas grow and shrink with load between min and max (instead of num_workers)")
    timeout_s: float = Field(60, gt=0, le=86_400)
    # Serve has no "no queue": its max_queued_requests is -1 (unbounded) or a positive number
    max_queued: int = Field(16, ge=1, description="calls that may wait for a slot (per gateway) before 'busy'")
    prepare: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="media field → ImagePrep/VideoPrep, overriding the input model's")
    config: dict[str, Any] = Field(
        default_factory=dict, description="the algorithm's own Config fields (never secrets: those come from env)")

    @model_validator(mode="after")
    def _check(self) -> AlgorithmSpec:
        if self.kind == "external" and self.num_gpus:
            raise ValueError("num_gpus: external algorithms run no model, so no GPU (got "
                             f"{self.num_gpus:g})")
        if self.max_concurrency is not None and self.max_concurrency < self.max_replicas:
            most = f"autoscaling.max ({self.max_replicas})" if self.autoscaling else f"num_workers ({self.num_workers})"
            raise ValueError(f"max_concurrency: must be >= {most}, "
                             f"since every replica takes at least one call (got {self.max_concurrency})")
        return self

    @property
    def display_title(self) -> str:
        return self.title or self.name.replace("-", " ").replace("_", " ").capitalize()

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max if self.autoscaling else self.num_workers

    def concurrency(self, default: int) -> int:
        return self.max_concurrency or max(default, self.max_replicas)

    def per_replica_concurrency(self, default: int) -> int:
        """Serve's ``max_ongoing_requests``: the global limit split over the most replicas there may be,
        never above it."""
        return max(1, self.concurrency(default) // self.max_replicas)


@dataclass(frozen=True)
class Entry:
    """A checked spec with its imported algorithm class and the config read for it."""

    spec: AlgorithmSpec
    cls: type[Algorithm]
    config: AlgorithmConfig

    @property
    def name(self) -> str:
        return self.spec.name


_DECORATED: dict[str, list[AlgorithmSpec]] = {}  # module → its @algorithm specs


def algorithm(**fields: Any):
    """Register a class from Python: ``@algorithm(name="x", kind="local")``.

    The target is the class itself. The entry joins a registry whose file lists
    the class's module under ``modules``, checked like a YAML entry.
    """

    def register(cls: type[Algorithm]) -> type[Algorithm]:
        data = {"target": f"{cls.__module__}:{cls.__qualname__}",
                "description": (cls.__doc__ or "").strip(), **fields}
        spec = parse_spec(data, where=f"@algorithm on {cls.__qualname__}")
        _DECORATED.setdefault(cls.__module__, []).append(spec)
        return cls

    return register


def parse_spec(data: Any, where: str) -> AlgorithmSpec:
    if not isinstance(data, dict):
        raise RegistryError(f"{where}: must be a mapping of fields (got {type(data).__name__})")
    try:
        return AlgorithmSpec.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"{where}: " + "; ".join(describe(exc.errors(include_url=False)))) from None


def import_target(target: str, where: str) -> type[Algorithm]:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{where}: target: cannot import {target!r} ({exc})") from None
    if not (isinstance(obj, type) and issubclass(obj, Algorithm)):
        raise RegistryError(f"{where}: target: {target!r} is not an engines.Algorithm subclass")
    for model in ("Input", "Output"):
        declared = getattr(obj, model, None)
        if not (isinstance(declared, type) and issubclass(declared, BaseModel)):
            raise RegistryError(f"{where}: target: {target!r} has no pydantic {model} model")
    if not (isinstance(obj.Config, type) and issubclass(obj.Config, AlgorithmConfig)):
        raise RegistryError(f"{where}: target: {target!r}: its Config is not an engines.AlgorithmConfig subclass")
    if not obj.overrides_predict():
        raise RegistryError(f"{where}: target: {target!r} implements neither predict nor predict_batch")
    return obj


class Registry:
    """The algorithms to serve, in declaration order, and the actor templates to host."""

    def __init__(self, entries: list[Entry], actors: list[ActorEntry] | None = None,
                 pipelines: list[PipelineSpec] | None = None) -> None:
        self._entries = {e.name: e for e in entries}
        self.actors = {a.name: a for a in actors or []}
        self.pipelines = pipelines or []

    def replace(self, entry: Entry) -> None:
        """Swap in an entry whose limits changed at run time (same name, same algorithm)."""
        assert entry.name in self._entries, entry.name
        self._entries[entry.name] = entry

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownAlgorithm(name, self.names()) from None

    def validate(self, name: str, arguments: Any) -> tuple[Entry, BaseModel]:
        """The entry and its checked input; bad input is ValidationFailed naming the field and rule."""
        entry = self.get(name)
        return entry, validate_input(entry.cls.Input, arguments)

    @classmethod
    def from_specs(cls, specs: list[tuple[str, AlgorithmSpec]], actors: list[ActorEntry] | None = None) -> Registry:
        entries: list[Entry] = []
        seen: dict[str, str] = {a.name: f"actor template {a.name}" for a in actors or []}
        for where, spec in specs:
            if spec.name in seen:
                raise RegistryError(f"{where}: name: {spec.name!r} is already declared by {seen[spec.name]}")
            seen[spec.name] = where
            cls_ = import_target(spec.target, where)
            try:
                media_plan(cls_.Input, spec.prepare)
            except ValueError as exc:
                raise RegistryError(f"{where}: {exc}") from None
            entries.append(Entry(spec, cls_, cls_.Config.load(spec.config, where)))
        return cls(entries, actors)

    @classmethod
    def load(cls, path: Path) -> Registry:
        """Read a registry file: a list of entries, or ``{modules: [...], algorithms: [...], pipelines: [...]}``.

        ``modules`` are imported first so their ``@algorithm`` classes join the
        registry after the file's own entries.
        """
        try:
            doc = yaml.safe_load(path.read_text()) or []
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read the registry ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path}: not valid YAML ({exc})") from None
        if isinstance(doc, dict):
            unknown = set(doc) - {"modules", "algorithms", "pipelines"}
            if unknown:
                raise RegistryError(f"{path}: unknown top-level keys {sorted(unknown)}; "
                                    "expected 'modules', 'algorithms' and 'pipelines'")
            modules, items, pipes = doc.get("modules") or [], doc.get("algorithms") or [], doc.get("pipelines") or []
        else:
            modules, items, pipes = [], doc, []
        if not isinstance(items, list):
            raise RegistryError(f"{path}: algorithms must be a list of entries")
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise RegistryError(f"{path}: modules: cannot import {module!r} ({exc})") from None
        specs, actors = [], []
        for i, item in enumerate(items):
            label = item.get("name", "?") if isinstance(item, dict) else "?"
            where = f"{path}: entry {i + 1} ({label})"
            if isinstance(item, dict) and item.get("kind") == "actor":
                actors.append(actor_entry(item, where))
            else:
                specs.append((where, parse_spec(item, where)))
        actors += decorated_in(modules, {a.name for a in actors})
        specs += [(f"@algorithm {s.name} ({s.target})", s)
                  for module in modules for s in _DECORATED.get(module, [])]
        registry = cls.from_specs(specs, actors)
        registry.pipelines = _pipelines(pipes, registry, path)
        return registry


def _pipelines(items: Any, registry: Registry, path: Path) -> list[PipelineSpec]:
    """The file's pipelines, each checked against the algorithms it names (topics are checked at start)."""
    if not isinstance(items, list):
        raise RegistryError(f"{path}: pipelines must be a list of pipelines")
    specs: dict[str, PipelineSpec] = {}
    for i, item in enumerate(items):
        where = f"{path}: pipeline {i + 1} ({item.get('name', '?') if isinstance(item, dict) else '?'})"
        try:
            spec = parse_pipeline(item, where)
            fields = registry.get(spec.algorithm).cls.Input.model_fields
        except (ValidationFailed, UnknownAlgorithm) as err:
            raise RegistryError(f"{where}: {err.message}" if isinstance(err, UnknownAlgorithm) else err.message) \
                from None
        wrong = spec.unknown_inputs(fields)
        if wrong:
            raise RegistryError(f"{where}: {'; '.join(wrong)}")
        if spec.name in specs:
            raise RegistryError(f"{where}: name: {spec.name!r} is already declared by another pipeline")
        specs[spec.name] = spec
    return list(specs.values())
