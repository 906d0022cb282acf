"""``image-classify``: EfficientNet-Lite0 on real images made in the test, from every kind of source."""

from __future__ import annotations

import asyncio
import base64
import io
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import Image, ImageDraw

from engines.errors import ValidationFailed
from storage import TaskStatus
from tests.conftest import Running
from tests.fake_apis import serving
from tests.mcp_clients import http_session


def stripes(fmt: str = "PNG") -> bytes:
    img = Image.new("RGB", (320, 240), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for x in range(0, 320, 32):
        draw.rectangle([x, 0, x + 15, 240], fill=(0, 0, 0))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


async def classify(server: Running, image: str, top_k: int = 5) -> dict:
    return await server.gateway.runtime.calls.invoke("image-classify", {"image": image, "top_k": top_k})


async def test_a_striped_image_looks_like_stripes(server: Running):
    out = await classify(server, data_uri(stripes()), top_k=5)
    labels = [x["label"] for x in out["labels"]]
    assert len(labels) == 5
    assert {"radiator", "shoji", "window shade", "plate rack", "space heater", "prison"} & set(labels)
    scores = [x["score"] for x in out["labels"]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001


async def test_jpeg_and_webp_give_the_same_answer_as_png(server: Running):
    png = (await classify(server, data_uri(stripes("PNG")), 1))["labels"][0]["label"]
    jpeg = (await classify(server, data_uri(stripes("JPEG"), "image/jpeg"), 1))["labels"][0]["label"]
    webp = (await classify(server, data_uri(stripes("WEBP"), "image/webp"), 1))["labels"][0]["label"]
    assert png == jpeg == webp


async def test_a_corrupt_image_fails_alone_in_its_batch(server: Running):
    good = data_uri(stripes())
    bad = data_uri(stripes()[:200])
    results = await asyncio.gather(*(classify(server, image) for image in [good, bad, good, good]),
                                   return_exceptions=True)
    assert isinstance(results[1], ValidationFailed)
    assert results[1].message == "image: not a readable image (truncated or corrupt)"
    assert all(len(r["labels"]) == 5 for r in (results[0], results[2], results[3]))


@pytest.mark.parametrize(("image", "problem"), [
    ("http://10.0.0.7/cat.png", "image: address 10.0.0.7 is not public"),
    ("data:image/png;base64,@@@", "image: data URI is not valid base64"),
    ("ftp://example.com/cat.png", "image: must match ^(https?://|data:|outputs/) (got 'ftp://example.com/cat.png')"),
])
async def test_bad_sources_are_refused_naming_the_field(server: Running, image: str, problem: str):
    with pytest.raises(ValidationFailed) as info:
        await classify(server, image)
    assert info.value.problems == [problem]


@pytest.mark.parametrize(("image", "problem"), [
    ("http://169.254.169.254/latest/meta-data", "image: address 169.254.169.254 is not public"),
    (data_uri(stripes()[:200]), "image: not a readable image (truncated or corrupt)"),
    (data_uri(b"GIF89a" + b"\xff" * 64, "image/gif"), "image: not a readable image"),
])
async def test_a_hostile_image_in_a_task_fails_it_cleanly(server: Running, image: str, problem: str):
    record = await server.gateway.runtime.tasks.submit("image-classify", {"image": image})
    final = await server.gateway.runtime.tasks.wait(record.task_id, 60)
    assert final.status is TaskStatus.FAILED and final.attempts == 1
    assert final.error is not None and problem in final.error["message"]


async def test_an_image_url_on_an_allowed_host_is_fetched(server: Running):
    body = stripes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as url:  # 127.0.0.1 is in the tests' FETCH_ALLOWLIST
        out = await classify(server, f"{url}/stripes.png", top_k=1)
    assert out["labels"][0]["label"] == (await classify(server, data_uri(body), 1))["labels"][0]["label"]


def encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(("image", "problem"), [
    (Image.new("1", (20000, 8)), "image: width 20000 exceeds max 16384"),
    (Image.new("RGB", (16, 16)), "image: format BMP not allowed (allowed: AVIF, GIF, JPEG, PNG, WEBP)"),
])
async def test_media_rules_apply_to_the_fetched_image(server: Running, image: Image.Image, problem: str):
    fmt = "BMP" if "BMP" in problem else "PNG"
    with pytest.raises(ValidationFailed) as info:
        await classify(server, data_uri(encoded(image, fmt)))
    assert info.value.problems == [problem]


async def test_the_published_tool_schema_shows_the_media_rules(server: Running):
    async with http_session(server.url, server.auth) as session:
        tool = next(t for t in (await session.list_tools()).tools if t.name == "image-classify")
    rules = tool.input_schema["properties"]["image"]["x-media-rules"]
    assert rules["max_bytes"] == 20 * 1024 * 1024 and "PNG" in rules["formats"]
