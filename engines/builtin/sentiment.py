"""``external-sentiment``: a sentiment API in the Hugging Face Inference API shape.

``POST $SENTIMENT_API_URL`` with ``{"inputs": text}`` and a bearer key
(``SENTIMENT_API_KEY``); the answer ``[[{"label", "score"}, ...]]`` becomes
``{label, score, scores}``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import SettingsConfigDict

from engines.algorithms.config import AlgorithmConfig
from engines.algorithms.external import ExternalAPI


class SentimentConfig(AlgorithmConfig):
    model_config = SettingsConfigDict(env_prefix="SENTIMENT_")

    api_url: str | None = Field(None, description="a Hugging Face Inference API text-classification endpoint")
    api_key: SecretStr | None = Field(None, description="its bearer key, if it needs one")


class SentimentInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000, description="the text to score",
                      examples=["The battery lasts all day and the screen is gorgeous."])


class LabelScore(BaseModel):
    label: str
    score: float = Field(ge=0, le=1)


class SentimentOutput(BaseModel):
    label: str = Field(description="the most likely label, e.g. POSITIVE")
    score: float = Field(description="its probability, 0 to 1")
    scores: list[LabelScore] = Field(description="every label the API returned, best first")


class HFSentiment(ExternalAPI):
    """Classify the sentiment of a text with an external Hugging Face-style API."""

    Input = SentimentInput
    Output = SentimentOutput
    Config = SentimentConfig
    config: SentimentConfig
    idempotent = True

    async def predict(self, inp: SentimentInput) -> SentimentOutput:
        url = self.require("api_url")
        key = self.config.api_key
        headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
        body = await self.request_json("POST", url, json={"inputs": inp.text}, headers=headers)
        rows = body[0] if isinstance(body, list) and body and isinstance(body[0], list) else body
        try:
            scores = sorted((LabelScore.model_validate(r) for r in rows), key=lambda s: -s.score)
        except (TypeError, ValidationError):
            raise self._fail("answered in an unexpected shape (want [[{label, score}]])") from None
        if not scores:
            raise self._fail("answered with no labels")
        return SentimentOutput(label=scores[0].label, score=scores[0].score, scores=scores)
