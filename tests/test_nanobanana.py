"""NanoBanana image generation end to end: a long job, the provider's protocol, a stored image."""

from __future__ import annotations

import base64

import httpx

from tests.conftest import Running
from tests.fake_apis import NanoBananaAPI, png_bytes
from tests.mcp_clients import http_session


async def test_an_image_is_generated_stored_and_returned_as_a_link_and_inline(
        server: Running, nanobanana_api: NanoBananaAPI):
    async with http_session(server.url, server.auth) as session:
        ref = (await session.call_tool("nanobanana-image", {"prompt": "a fox", "size": "16:9"})).structured_content
        assert ref["status"] == "queued"
        done = await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 45})
    record = done.structured_content
    assert record["status"] == "completed", record
    image = record["result"]["image"]
    assert image["key"] == f"outputs/{ref['task_id']}/image.png" and image["content_type"] == "image/png"
    sent = next(g for g in nanobanana_api.generated if g["taskId"] == record["result"]["provider_task_id"])
    assert sent["type"] == "TEXTTOIAMGE" and sent["image_size"] == "16:9" and sent["numImages"] == 1
    assert "callBackUrl" in sent and sent["imageUrls"] == []
    inline = [c for c in done.content if c.type == "image"]
    assert inline and base64.b64decode(inline[0].data) == png_bytes()
    async with httpx.AsyncClient() as http:  # a signed link needs no bearer token
        fetched = await http.get(image["url"])
        assert fetched.status_code == 200 and fetched.content == png_bytes()
        tampered = await http.get(image["url"].replace("sig=", "sig=0"))
        assert tampered.status_code == 403


async def test_provider_failures_end_the_task_with_the_reason(server: Running):
    queue = server.gateway.runtime.tasks
    record = await queue.submit("nanobanana-image", {"prompt": "FAIL please"})
    final = await queue.wait(record.task_id, 45)
    assert final.status.value == "failed"
    assert "generation failed: content policy violation" in final.error["message"]


async def test_image_urls_must_be_public(server: Running):
    queue = server.gateway.runtime.tasks
    record = await queue.submit("nanobanana-image", {"prompt": "edit", "image_urls": ["http://10.0.0.7/cat.png"]})
    final = await queue.wait(record.task_id, 45)
    assert final.status.value == "failed"
    assert final.error["message"] == "image_urls[0]: address 10.0.0.7 is not public"


async def test_wait_task_sends_the_providers_progress(server: Running):
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with http_session(server.url, server.auth) as session:
        ref = (await session.call_tool("nanobanana-image", {"prompt": "a slow fox"})).structured_content
        done = await session.call_tool("wait_task", {"task_id": ref["task_id"], "timeout_s": 45},
                                       progress_callback=on_progress)
    assert done.structured_content["status"] == "completed"
    messages = [m for _, m in seen]
    assert "submitted to NanoBanana" in messages or "generating" in messages
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)
