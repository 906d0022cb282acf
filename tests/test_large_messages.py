"""Inputs and results past Serve's default 4 MiB gRPC message go through: what bounds a call's size
is our validation (the request body, the media rules), not a limit hidden in the transport."""

from __future__ import annotations

import base64
import io
import os

import httpx
import pytest
from PIL import Image

from storage import TaskStatus
from tests.conftest import Running

pytestmark = pytest.mark.asyncio(loop_scope="session")

SERVE_DEFAULT_LIMIT = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def big_image() -> str:
    """A PNG data URI of about 8 MB: noise does not compress."""
    side = 1400
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buf, "PNG")
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    assert SERVE_DEFAULT_LIMIT < len(uri) < 16_000_000  # past Serve's default, within our body limit
    return uri


async def test_an_image_past_serves_default_message_limit_is_classified(server: Running, big_image: str):
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=120) as http:
        reply = await http.post("/invoke/image-classify", json={"image": big_image, "top_k": 1})
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["result"]["labels"]) == 1


async def test_a_task_with_an_image_past_serves_default_message_limit_succeeds(server: Running, big_image: str):
    task = await server.gateway.runtime.tasks.submit("image-classify", {"image": big_image, "top_k": 1})
    ended = await (await server.gateway.runtime.tasks.store()).wait(task.task_id, 120)
    assert ended is not None and ended.status is TaskStatus.COMPLETED, ended
    assert len(ended.result["labels"]) == 1


async def test_a_result_past_serves_default_message_limit_comes_back_whole(server: Running):
    size = SERVE_DEFAULT_LIMIT + 1_000_000
    result = await server.gateway.runtime.calls.invoke("test-blob", {"size": size})
    assert len(result["blob"]) == size
