"""From a Kafka message to the algorithm's input, and from its result to the output message.

Kept apart from the consumer so the rules are one small pure module: a message
that does not fit (not JSON, a missing path) is the message's fault and goes to
the dead-letter topic, named by the path that was missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from engines.streams.spec import PipelineSpec

_MISSING = object()


class Unfit(Exception):
    """The message cannot become an input; the text says which rule it broke."""


@dataclass(frozen=True)
class Coordinates:
    """Where a message came from."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int


def _path(value: Any, path: str) -> Any:
    for part in path.split(".") if path else ():
        if isinstance(value, dict):
            value = value.get(part, _MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


class Mapping:
    """A pipeline's input and output maps, applied per message."""

    def __init__(self, spec: PipelineSpec) -> None:
        self.input_map, self.output_map = spec.input_map, spec.output_map

    def message(self, raw: bytes | None) -> Any:
        if not raw:
            raise Unfit("value: the message is empty (expected a JSON object)")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Unfit(f"value: not JSON ({exc})") from None

    def input(self, message: Any) -> Any:
        """The algorithm's input (validated by its replica against the algorithm's own model)."""
        if self.input_map is None:
            return message
        out = {}
        for field, path in self.input_map.items():
            value = _path(message, path)
            if value is _MISSING:
                raise Unfit(f"input_map.{field}: the message has no {path!r}")
            out[field] = value
        return out

    def output(self, message: Any, result: Any, at: Coordinates) -> bytes:
        if self.output_map is None:
            return orjson.dumps({"key": at.key, "partition": at.partition, "offset": at.offset, "result": result})
        roots = {"result": result, "input": message, "key": at.key, "offset": at.offset,
                 "partition": at.partition, "topic": at.topic, "timestamp": at.timestamp_ms}
        out = {}
        for field, source in self.output_map.items():
            root, _, rest = source.partition(".")
            value = _path(roots[root], rest)
            out[field] = None if value is _MISSING else value
        return orjson.dumps(out)
