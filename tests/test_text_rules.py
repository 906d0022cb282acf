"""Language rules on text fields: checked during validation, shown in the schema."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from engines.algorithms.text_rules import detect_language, languages
from engines.algorithms.validation import validate_input
from engines.errors import ValidationFailed


class Review(BaseModel):
    text: Annotated[str, languages("en", "fr")] = Field(max_length=1000)


@pytest.mark.parametrize(("text", "lang"), [
    ("The battery lasts all day and the screen is gorgeous.", "en"),
    ("Die Batterie hält den ganzen Tag und der Bildschirm ist wunderschön.", "de"),
    ("Le chat dort sur la table de la cuisine depuis ce matin.", "fr"),
])
def test_detection_names_the_language(text: str, lang: str):
    assert detect_language(text)[0] == lang


def test_allowed_languages_pass_and_others_are_refused_naming_what_was_seen():
    assert validate_input(Review, {"text": "Le chat dort sur la table de la cuisine."}).text.startswith("Le chat")
    with pytest.raises(ValidationFailed) as info:
        validate_input(Review, {"text": "Die Batterie hält den ganzen Tag und der Bildschirm ist wunderschön."})
    assert info.value.problems == ["text: language de not allowed (allowed: en, fr)"]


def test_text_too_short_to_tell_passes_and_other_rules_still_apply():
    assert validate_input(Review, {"text": "ok"}).text == "ok"
    with pytest.raises(ValidationFailed) as info:
        validate_input(Review, {"text": "x" * 1001})
    assert info.value.problems == ["text: at most 1000 characters (got 1001)"]


def test_the_rule_is_in_the_json_schema():
    rules = Review.model_json_schema()["properties"]["text"]["x-text-rules"]
    assert rules == {"languages": ["en", "fr"], "detected_from_chars": 20}
