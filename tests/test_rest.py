"""The seed Ray Service's REST API beside the MCP endpoints."""

from __future__ import annotations

import httpx
import pytest

from mcp_server.rest import BODY_UNPARSABLE
from tests.conftest import Running


@pytest.fixture
async def rest(server: Running):
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as http:
        yield http


async def test_invoke_answers_the_result_and_records_the_call_like_a_task(rest: httpx.AsyncClient):
    response = await rest.post("/invoke/local-echo", json={"text": "rest"})
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "completed" and answer["result"] == {"text": "rest"}
    record = (await rest.get(f"/tasks/{answer['task_id']}")).json()
    assert (record["status"], record["algorithm"], record["payload"], record["result"]) == (
        "completed", "local-echo", {"text": "rest"}, {"text": "rest"})
    assert record["finished_at"] >= record["started_at"] > 0 and record["attempts"] == 1


async def test_unknown_algorithm_is_404_listing_the_names(rest: httpx.AsyncClient):
    response = await rest.post("/invoke/nope", json={})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "unknown_algorithm"
    assert {"local-echo", "text-embedding", "external-sentiment"} <= set(error["known"])


@pytest.mark.parametrize(("body", "problem"), [
    ({"texts": []}, "texts: at least 1 item (got 0)"),
    ({"texts": ["a"] * 65}, "texts: at most 64 items (got 65)"),
    ({"texts": [3]}, "texts[0]: input should be a valid string (got int 3)"),
    ({}, "texts: required"),
    ({"texts": ["ok"], "extra": 1}, "extra: unknown field"),
])
async def test_bad_bodies_get_the_same_wording_as_mcp(rest: httpx.AsyncClient, body: dict, problem: str):
    response = await rest.post("/invoke/text-embedding", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["problems"] == [problem]


async def test_malformed_json_is_a_422_naming_the_body(rest: httpx.AsyncClient):
    response = await rest.post("/invoke/local-echo", content=b'{"text": ',
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"]["problems"] == ["body: not valid JSON (Expecting value at character 9)"]


async def test_json_nested_past_the_parser_is_a_400_in_our_shape(rest: httpx.AsyncClient):
    response = await rest.post("/invoke/local-echo", content=b"[" * 100_000 + b"]" * 100_000,
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"error": {"type": "bad_request", "message": BODY_UNPARSABLE}}
    assert (await rest.get("/healthz")).status_code == 200  # and the server is fine


async def test_openapi_documents_each_algorithm_body(rest: httpx.AsyncClient):
    spec = (await rest.get("/openapi.json")).json()
    assert "/invoke/text-embedding" in spec["paths"]
    assert "EmbeddingInput" in spec["components"]["schemas"]
    assert (await rest.get("/docs")).status_code == 200


async def test_a_huge_body_is_refused_before_it_is_buffered(rest: httpx.AsyncClient, server: Running):
    limit = server.gateway.settings.max_request_bytes
    response = await rest.post("/invoke/local-echo", content=b"x" * (limit + 1),
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("request body: larger than")

    async def chunks():
        for _ in range(limit // 65536 + 2):
            yield b"x" * 65536

    chunked = await rest.post("/mcp", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
