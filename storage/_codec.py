"""How task values are written to and read from Redis: JSON text, and replies in either RESP shape."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def messages(entries: Any) -> list[tuple[str, str | None]]:
    """``(message id, task id)`` of stream entries; None for an entry that names no task."""
    return [(message_id, (fields or {}).get("task_id")) for message_id, fields in entries or []]


def as_mapping(reply: Any) -> dict[str, str]:
    """A script's HGETALL reply: a flat list (RESP2 scripts) or a map."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=True))


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def to_float(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


def error_dict(error: Mapping[str, Any] | BaseException) -> dict[str, Any]:
    """Errors as stored: {type, message, ...}; an exception with ``to_dict`` (AlgoError) keeps its fields."""
    if isinstance(error, BaseException):
        to_dict = getattr(error, "to_dict", None)
        if callable(to_dict):
            return dict(to_dict())
        return {"type": type(error).__name__, "message": str(error)}
    return {"type": "error", "message": "", **error}
