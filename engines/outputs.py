"""Files an answer links to (``{url, key, content_type, bytes}``), seen from the gateway.

Replicas store outputs and make a first link; the gateway gives every answer a
fresh one from its own store: a local link to the address it really listens
on (a stdio gateway's object listener, an HTTP gateway's ``--port``), a newly
presigned one for S3. So a link in a week-old task record, or one made by
another gateway, still works for whoever reads it here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from storage.objects import ObjectStore, StorageError

OUTPUT_FIELDS = frozenset({"url", "key", "content_type", "bytes"})


def output_files(value: Any) -> Iterator[dict[str, Any]]:
    """Every output-file mapping inside a result, depth first."""
    if isinstance(value, dict):
        if value.keys() >= OUTPUT_FIELDS:
            yield value
        for item in value.values():
            if isinstance(item, dict | list):
                yield from output_files(item)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                yield from output_files(item)


async def relink(value: Any, store: ObjectStore) -> Any:
    """``value`` with each output file's ``url`` made anew by ``store`` (in place: answers are fresh)."""
    for output in output_files(value):
        try:
            output["url"] = await store.url(str(output["key"]))
        except (StorageError, ValueError):
            continue  # a key this store cannot link: the stored link stands
    return value
