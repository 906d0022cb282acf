"""Actor templates: a plain Python class (or a function of a state) made into a stateful, virtual actor.

``@actorless`` records what the runtime needs to host one: the public methods
as operations, each with an exact input and output schema from its type hints,
which of them only read, and how the state is kept::

    @actorless(name="Account", read_only=["get_info"])
    class Account:
        def __init__(self, name: str, balance: int = 0):
            self.name, self.balance = name, balance

        def deposit(self, amount: int) -> int:
            self.balance += amount
            return self.balance

The state is JSON (never pickle): by default the instance's attributes, or what
the class's ``_store_states()`` returns and ``_recover_states(state)`` takes
back. An activation replays the constructor with the bound arguments, then
restores the state. A function ``def counter(state: dict, step: int = 1) -> int``
is a template with one operation (named after it) over a ``state`` dict.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, get_type_hints

import orjson
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic_core import to_jsonable_python

from engines.actors.persistence import Checkpoint, Persistence
from engines.algorithms.validation import describe
from engines.errors import RegistryError, UnknownMethod, ValidationFailed

TEMPLATES: dict[str, ActorTemplate] = {}  # by name, as decorated (a registry's modules: add them)


@dataclass(frozen=True)
class Method:
    """One operation of a template."""

    name: str
    fn: Callable[..., Any]
    input: type[BaseModel]
    output: TypeAdapter
    read_only: bool
    doc: str

    @cached_property
    def _fields(self) -> tuple[list[str], frozenset[str]]:
        """The parameters in order, and the required ones (pydantic rebuilds ``model_fields`` on each read)."""
        fields = self.input.model_fields
        return list(fields), frozenset(name for name, info in fields.items() if info.is_required())

    def arguments(self, args: Iterable[Any], kwargs: dict[str, Any], where: str) -> dict[str, Any]:
        """Positional and keyword arguments checked against the signature, as keyword arguments."""
        names, required = self._fields
        args = list(args)
        if len(args) > len(names):
            raise ValidationFailed([f"{where}: takes {len(names)} argument(s), got {len(args)} positional"])
        given = dict(zip(names, args, strict=False))
        clash = sorted(set(given) & set(kwargs))
        if clash:
            raise ValidationFailed([f"{where}.{clash[0]}: given both by position and by name"])
        try:
            checked = self.input.model_validate({**given, **kwargs})
        except ValidationError as exc:
            raise ValidationFailed([f"{where}.{p}" for p in describe(exc.errors(include_url=False))]) from None
        return {name: getattr(checked, name) for name in checked.model_fields_set | required}


@dataclass(frozen=True)
class ActorTemplate:
    """What ``@actorless`` made of a class or a function."""

    name: str
    target: Callable[..., Any]
    methods: dict[str, Method]
    description: str = ""
    persistence: Persistence = field(default_factory=Persistence)
    constructor: type[BaseModel] | None = None  # the class's __init__ arguments
    is_function: bool = False
    bind_options: dict[str, Any] = field(default_factory=dict)  # the seed's options, kept with each binding

    # -- the seed's API on the template ---------------------------------------------

    def options(self, **options: Any) -> ActorTemplate:
        """``Template.options(is_persistent=…, is_always_alive=…, storage_level=…, state_memory_size=…)``:
        kept with the bindings made from it (``is_always_alive`` keeps them active, never passivated)."""
        return replace(self, bind_options={**self.bind_options, **options})

    async def bind(self, unique_id: str, *args: Any, **kwargs: Any) -> Any:
        """``Template.bind(unique_id, *args, **kwargs)``: record the actor; nothing runs until its first call."""
        from engines.actors import api  # the process's runtime, set when it starts

        return await api.bind(self.name, unique_id, *args, options=self.bind_options, **kwargs)

    @property
    def module_target(self) -> str:
        return f"{self.target.__module__}:{self.target.__qualname__}"

    def method(self, name: str) -> Method:
        try:
            return self.methods[name]
        except KeyError:
            raise UnknownMethod(f"{self.name}.{name}", [f"{self.name}.{m}" for m in self.methods]) from None

    def construct_arguments(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """Check bind arguments against the constructor (nothing runs yet); JSON-safe copies."""
        if self.is_function:
            if args or kwargs:
                raise ValidationFailed([f"{self.name}: a function template takes no constructor arguments"])
            return [], {}
        assert self.constructor is not None
        names = list(self.constructor.model_fields)
        if len(args) > len(names):
            raise ValidationFailed([f"{self.name}(): takes {len(names)} argument(s), got {len(args)} positional"])
        try:
            self.constructor.model_validate({**dict(zip(names, args, strict=False)), **kwargs})
        except ValidationError as exc:
            raise ValidationFailed([f"{self.name}().{p}" for p in describe(exc.errors(include_url=False))]) from None
        return to_jsonable_python(list(args)), to_jsonable_python(dict(kwargs))

    # -- an activation's object ----------------------------------------------

    def instantiate(self, args: list[Any], kwargs: dict[str, Any], state: Any) -> Any:
        """A live actor: the constructor replayed with its bound arguments, then its state restored."""
        if self.is_function:
            return {} if state is None else dict(state)
        instance = self.target(*args, **kwargs)
        if state is not None:
            recover = getattr(instance, "_recover_states", None)
            if callable(recover):
                recover(state)
            else:
                instance.__dict__.update(state)
        return instance

    def state_json(self, instance: Any) -> bytes:
        """What is checkpointed, as JSON (orjson: a 300 KB state in a third of a millisecond; pydantic
        models and the like through pydantic's encoder); a state that is not JSON data fails the call,
        naming it."""
        if self.is_function:
            raw = instance
        else:
            store = getattr(instance, "_store_states", None)
            raw = store() if callable(store) else {k: v for k, v in vars(instance).items() if not k.startswith("_")}
        try:
            return orjson.dumps(raw, default=to_jsonable_python, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError as exc:
            raise ValidationFailed([f"{self.name}: its state is not JSON data ({exc}); store only plain values, "
                                    "or give the class _store_states()/_recover_states(state)"]) from None

    def bound_call(self, instance: Any, method: Method) -> Callable[..., Any]:
        if self.is_function:
            return lambda **kwargs: method.fn(instance, **kwargs)
        return getattr(instance, method.name)


def _model(name: str, fn: Callable[..., Any], skip: int, where: str) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters after the first ``skip`` (self, state)."""
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for param in list(inspect.signature(fn).parameters.values())[skip:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise RegistryError(f"{where}: *args and **kwargs have no schema; name every parameter")
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


def _method(template: str, name: str, fn: Callable[..., Any], skip: int, read_only: bool) -> Method:
    where = f"@actorless {template}.{name}"
    hints = get_type_hints(fn)
    return Method(name, fn, _model(f"{template}_{name}_input", fn, skip, where),
                  TypeAdapter(hints.get("return", Any)), read_only, inspect.getdoc(fn) or "")


def actorless(target: Any = None, *, name: str | None = None, read_only: Iterable[str] = (),
              checkpoint: Checkpoint = "every_call", checkpoint_every: int | None = None,
              checkpoint_every_s: float | None = None, idle_timeout_s: float = 300.0,
              description: str | None = None) -> Any:
    """Make a class (or a function of a state) an actor template; usable bare or with options
    (``checkpoint`` and the rest: :mod:`engines.actors.persistence`)."""

    def make(obj: Any) -> ActorTemplate:
        template_name = name or obj.__name__
        read = set(read_only)
        if inspect.isclass(obj):
            methods = {n: _method(template_name, n, fn, 1, n in read) for n, fn in inspect.getmembers(obj)
                       if not n.startswith("_") and inspect.isfunction(fn)}
            constructor = _model(f"{template_name}_init", obj.__init__, 1, f"@actorless {template_name}") \
                if obj.__init__ is not object.__init__ else create_model(f"{template_name}_init")
            is_function = False
        else:
            methods = {obj.__name__: _method(template_name, obj.__name__, obj, 1, obj.__name__ in read)}
            constructor, is_function = None, True
        unknown = sorted(read - set(methods))
        if unknown:
            raise RegistryError(f"@actorless {template_name}: read_only names no method: {unknown}")
        if not methods:
            raise RegistryError(f"@actorless {template_name}: no public method to call")
        persistence = Persistence(checkpoint, checkpoint_every, checkpoint_every_s, idle_timeout_s)
        template = ActorTemplate(template_name, obj, methods, description or (inspect.getdoc(obj) or "").strip(),
                                 persistence.check(f"@actorless {template_name}"), constructor, is_function)
        TEMPLATES[template_name] = template
        return template

    return make(target) if target is not None else make

