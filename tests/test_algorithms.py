"""The built-in algorithms give answers that mean something."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from uuid import uuid4

import pytest

from engines.errors import UpstreamFailed
from tests.conftest import Running
from tests.fake_apis import SentimentAPI
from tests.mcp_clients import http_session


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def embed(server: Running, texts: list[str]) -> dict:
    return await server.gateway.runtime.calls.invoke("text-embedding", {"texts": texts})


async def test_embeddings_are_normalised_and_capture_meaning(server: Running):
    out = await embed(server, ["cat", "kitten", "stock market"])
    cat, kitten, stocks = out["embeddings"]
    assert out["dim"] == 384 and len(cat) == 384
    assert dot(cat, cat) == pytest.approx(1.0, abs=1e-5)
    assert dot(cat, kitten) > dot(cat, stocks) + 0.3


async def test_concurrent_calls_are_batched_without_mixing_answers(server: Running):
    texts = [f"sentence number {i} about {'cats' if i % 2 else 'bonds'}" for i in range(24)]
    alone = (await embed(server, texts[:1]))["embeddings"][0]
    results = await asyncio.gather(*(embed(server, [t]) for t in texts))
    assert dot(results[0]["embeddings"][0], alone) == pytest.approx(1.0, abs=1e-4)
    firsts = [r["embeddings"][0] for r in results]
    assert all(dot(firsts[i], firsts[i]) == pytest.approx(1.0, abs=1e-4) for i in range(len(texts)))
    assert dot(firsts[1], firsts[3]) > dot(firsts[1], firsts[2])  # cats~cats over cats~bonds


async def test_sentiment_speaks_the_hugging_face_protocol(server: Running, sentiment_api: SentimentAPI):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool("external-sentiment", {"text": "I love this phone"})
    assert not result.is_error
    assert result.structured_content["label"] == "POSITIVE"
    assert result.structured_content["score"] == pytest.approx(0.97)
    assert [s["label"] for s in result.structured_content["scores"]] == ["POSITIVE", "NEGATIVE"]
    assert {"body": {"inputs": "I love this phone"},
            "authorization": f"Bearer {sentiment_api.key}"} in sentiment_api.seen


async def test_sentiment_retries_rate_limits(server: Running, sentiment_api: SentimentAPI):
    text = f"FLAKY but good {uuid4().hex}"
    out = await server.gateway.runtime.calls.invoke("external-sentiment", {"text": text})
    assert out["label"] == "POSITIVE"
    assert sum(r["body"] == {"inputs": text} for r in sentiment_api.seen) == 3  # two 429s, then the answer


async def test_upstream_errors_never_carry_the_key(server: Running, sentiment_api: SentimentAPI):
    async with http_session(server.url, server.auth) as session:
        result = await session.call_tool("external-sentiment", {"text": "BROKEN"})
    text = result.content[0].text
    assert result.is_error and "answered HTTP 500" in text
    assert sentiment_api.key not in text and sentiment_api.key not in str(result.structured_content)


async def test_an_oversized_upstream_answer_is_refused_not_read_whole(server: Running):
    with pytest.raises(UpstreamFailed, match=r"HFSentiment: answered with more than 8388608 bytes"):
        await server.gateway.runtime.calls.invoke("external-sentiment", {"text": "HUGE"})
    assert (await server.gateway.runtime.calls.invoke("external-sentiment", {"text": "good"}))["label"] == "POSITIVE"


def test_a_model_loaded_outside_ray_picks_the_cpu_without_starting_ray():
    """Scripts and benches load models directly; asking Ray for GPUs must not start a cluster."""
    probe = ("import ray; from engines.builtin._device import pick_device; "
             "print(pick_device(), ray.is_initialized())")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["cpu", "False"]
