"""Turn pydantic errors into short ``field: rule (got …)`` lines.

Both callers' inputs and registry entries are pydantic models; this is the one
place that decides how a broken rule is worded, so an agent reads
``texts: at least 1 item (got 0)`` rather than pydantic's internal phrasing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from engines.errors import ValidationFailed

_SHOWN_CHARS = 40


def _field(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "input"


def _seen(value: Any) -> str:
    if isinstance(value, (str, list, dict, bytes)):
        size = len(value)
        if isinstance(value, str) and size <= _SHOWN_CHARS:
            return repr(value)
        unit = "characters" if isinstance(value, str) else "items"
        return f"{size} {unit}"
    return f"{type(value).__name__} {value!r}"[:_SHOWN_CHARS]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _rule(err: ErrorDetails) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    is_text = isinstance(value, str)
    unit = "character" if is_text else "item"
    match kind:
        case "missing":
            return "required"
        case "extra_forbidden":
            return "unknown field"
        case "too_short" | "string_too_short":
            return f"at least {_plural(ctx['min_length'], unit)} (got {len(value)})"
        case "too_long" | "string_too_long":
            return f"at most {_plural(ctx['max_length'], unit)} (got {len(value)})"
        case "greater_than_equal" | "greater_than" | "less_than_equal" | "less_than":
            op = {"greater_than_equal": ">=", "greater_than": ">",
                  "less_than_equal": "<=", "less_than": "<"}[kind]
            bound = next(iter(ctx.values()))
            return f"must be {op} {bound:g} (got {value!r})" if isinstance(bound, float) else \
                f"must be {op} {bound} (got {value!r})"
        case "literal_error":
            return f"must be one of {ctx['expected']} (got {_seen(value)})"
        case "string_pattern_mismatch":
            return f"must match {ctx['pattern']} (got {_seen(value)})"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{err['msg'][0].lower()}{err['msg'][1:]} (got {_seen(value)})"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}"


def describe(errors: Sequence[ErrorDetails]) -> list[str]:
    """One ``field: rule`` line per problem, in pydantic's order."""
    return [f"{_field(tuple(e['loc']))}: {_rule(e)}" for e in errors]


def validate_input(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate a caller's arguments, raising :class:`ValidationFailed`; a model already checked
    (the REST layer parses bodies itself) passes as it is."""
    if isinstance(data, model):
        return data
    if not isinstance(data, dict):
        raise ValidationFailed([f"input: must be an object (got {_seen(data)})"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(describe(exc.errors(include_url=False))) from None
