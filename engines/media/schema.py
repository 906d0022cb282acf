"""Attach media rules to input-model fields and show them in JSON schema.

A rule lives next to the field it guards (``Annotated[bytes, media(rule)]``),
so the registry's input model stays the one source of truth, and an MCP
client reads the same limits in ``inputSchema`` under ``x-media-rules``.
A raw pydantic model cannot be used as ``Annotated`` metadata (pydantic would
take it for the field's type), hence the small :class:`MediaRule` wrapper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from engines.media.image import ImageRule
from engines.media.prepare import Prep
from engines.media.video import VideoRule

Rule = ImageRule | VideoRule


def rule_schema_extra(rule: Rule) -> dict[str, Any]:
    """``{"x-media-rules": {...}}``: the rule's set bounds, JSON-ready and sorted."""
    body = rule.model_dump(mode="json", exclude_none=True)
    body = {k: sorted(v) if isinstance(v, list) and k != "aspect_ratios" else v for k, v in body.items()}
    return {"x-media-rules": body}


@dataclass(frozen=True)
class MediaRule:
    """``Annotated`` metadata carrying a rule (and a prep); adds the rule to the field's JSON schema."""

    rule: Rule
    prepare: Prep | None = None
    fetch_timeout_s: float = 30.0

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        schema.update(rule_schema_extra(self.rule))
        return schema


def media(rule: Rule, prepare: Prep | None = None, fetch_timeout_s: float = 30.0) -> MediaRule:
    """Mark a field: ``image: Annotated[str, media(ImageRule(max_width=4096), ImagePrep(max_side=512))]``.

    The framework loads the field (URL, ``data:`` URI or object key), checks it
    against ``rule``, applies ``prepare`` and hands ``predict`` a
    :class:`engines.media.Media` in its place.
    """
    return MediaRule(rule, prepare, fetch_timeout_s)


def media_fields(model: type[BaseModel]) -> dict[str, MediaRule]:
    """The media declaration of each field of ``model`` that has one, by field name."""
    found: dict[str, MediaRule] = {}
    for name, info in model.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, MediaRule):
                found[name] = meta
    return found


def media_rules(model: type[BaseModel]) -> dict[str, Rule]:
    """The media rule of each field of ``model`` that has one, by field name."""
    return {name: m.rule for name, m in media_fields(model).items()}
