"""Language rules for text fields, checked at validation time (before anything reaches Ray).

``Annotated[str, languages("en", "fr")]`` refuses text detected as another
language, naming what was seen: ``text: language de not allowed (allowed:
en, fr)``. Detection is py3langid (a maintained langid.py fork whose model
ships inside the package: nothing is downloaded). Text too short to tell
(under ``min_chars``) passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

MIN_CHARS = 20


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code and probability."""
    lang, prob = _identifier().classify(text)
    return lang, float(prob)


@dataclass(frozen=True)
class LanguageRule:
    """``Annotated`` metadata: the allowed ISO 639-1 languages of a text field."""

    allowed: tuple[str, ...]
    min_chars: int = MIN_CHARS

    def _check(self, text: str) -> str:
        if len(text.strip()) < self.min_chars:
            return text
        lang, _ = detect_language(text)
        if lang not in self.allowed:
            raise PydanticCustomError("language_not_allowed", "language {seen} not allowed (allowed: {allowed})",
                                      {"seen": lang, "allowed": ", ".join(self.allowed)})
        return text

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core)
        schema["x-text-rules"] = {"languages": list(self.allowed), "detected_from_chars": self.min_chars}
        return schema


def languages(*allowed: str, min_chars: int = MIN_CHARS) -> LanguageRule:
    return LanguageRule(tuple(sorted(allowed)), min_chars)
