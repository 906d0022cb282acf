"""Media fields before ``predict``: load each one, check it against its rule, apply its prep.

The plan for an algorithm comes from its input model (``media(rule, prep)``)
with the registry entry's ``prepare`` overriding the prep per field, so an
operator can, say, cap image size for one deployment without touching code.
The replica runs the plan on every call, outside batches, with the CPU work
in a thread so a large decode never stalls the replica's other calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from engines.algorithms.validation import describe
from engines.media.prepare import Media, apply, prep_for
from engines.media.schema import MediaRule, media_fields
from engines.media.source import load_media

#: the fetch cap for a rule that sets no max_bytes
MAX_MEDIA_BYTES = 500 * 1024 * 1024


def media_plan(model: type[BaseModel], overrides: Mapping[str, Any] | None = None) -> dict[str, MediaRule]:
    """Each media field's rule and prep; ``overrides`` (a registry ``prepare``) replace preps by field.

    Raises ValueError naming ``prepare.<field>`` and the broken rule.
    """
    plan = media_fields(model)
    for name, raw in (overrides or {}).items():
        if name not in plan:
            known = ", ".join(plan) or "none"
            raise ValueError(f"prepare.{name}: not a media field of {model.__name__} (media fields: {known})")
        try:
            plan[name] = replace(plan[name], prepare=prep_for(plan[name].rule, raw))
        except ValidationError as exc:
            raise ValueError("; ".join(f"prepare.{name}.{line}" for line in
                                       describe(exc.errors(include_url=False)))) from None
    return plan


async def _resolve(name: str, ref: str, declared: MediaRule) -> Media:
    data = await load_media(name, ref, max_bytes=declared.rule.max_bytes or MAX_MEDIA_BYTES,
                            timeout_s=declared.fetch_timeout_s)
    return await asyncio.to_thread(apply, name, data, declared.rule, declared.prepare)


async def resolve_media(inp: BaseModel, plan: Mapping[str, MediaRule]) -> BaseModel:
    """``inp`` with each media reference replaced by its checked, prepared :class:`Media`."""
    refs = {name: ref for name in plan if isinstance(ref := getattr(inp, name), str)}
    if not refs:
        return inp
    media = await asyncio.gather(*(_resolve(name, ref, plan[name]) for name, ref in refs.items()))
    return inp.model_copy(update=dict(zip(refs, media, strict=True)))
