"""``nanobanana-image``: image generation through the NanoBanana API (the seed's example).

Submit with ``POST {base}/api/v1/nanobanana/generate``, then poll
``GET {base}/api/v1/nanobanana/record-info?taskId=…`` until ``successFlag`` is
1 (done), 2 or 3 (failed); 0 means still generating. The image is downloaded
(from a public address only), stored as this task's output, and returned as a
link. The API spells its types ``TEXTTOIAMGE`` and ``IMAGETOIAMGE``.
"""

from __future__ import annotations

import asyncio
import mimetypes
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from engines.algorithms.config import AlgorithmConfig
from engines.algorithms.external import ExternalAPI
from engines.net.safe_url import check_forwarded_url, fetch_public
from engines.settings import get_settings

AspectRatio = Literal["1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5", "21:9"]
MAX_IMAGE_BYTES = 30 * 1024 * 1024
_TYPICAL_S = 30.0  # for progress estimates while the provider works


class NanoBananaConfig(AlgorithmConfig):
    model_config = SettingsConfigDict(env_prefix="NANOBANANA_")

    api_key: SecretStr | None = Field(None, description="the NanoBanana API key")
    base_url: str = "https://api.nanobananaapi.ai"
    callback_url: str = Field("", description="sent as callBackUrl; we poll, so it may stay empty")
    poll_interval_seconds: float = Field(3, gt=0)


class NanoBananaInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=20_000, description="what to draw, or how to edit the images",
                        examples=["a watercolour fox in a snowy forest"])
    image_urls: list[str] = Field(default_factory=list, max_length=14,
                                  description="0 to 14 public http(s) image URLs to edit or combine")
    size: AspectRatio = Field("1:1", description="aspect ratio of the result")


class OutputFile(BaseModel):
    url: str = Field(description="download link (presigned or signed, expiring)")
    key: str = Field(description="object-store key, outputs/<task_id>/…")
    content_type: str
    bytes: int


class NanoBananaOutput(BaseModel):
    image: OutputFile
    provider_task_id: str = Field(description="NanoBanana's own task id")


class NanoBanana(ExternalAPI):
    """Generate or edit an image with NanoBanana; a long job that returns a stored image link."""

    Input = NanoBananaInput
    Output = NanoBananaOutput
    Config = NanoBananaConfig
    config: NanoBananaConfig
    read_only = False

    def _check_code(self, body: Any, step: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise self._fail(f"{step}: answered in an unexpected shape")
        if body.get("code") != 200:
            raise self._fail(f"{step} refused: code {body.get('code')}: {body.get('msg') or 'no message'}")
        return body.get("data") or {}

    async def predict(self, inp: NanoBananaInput) -> NanoBananaOutput:
        allowlist = get_settings().fetch_allowlist
        base = self.require("base_url").rstrip("/")
        headers = {"Authorization": f"Bearer {self.require('api_key')}"}
        for i, url in enumerate(inp.image_urls):
            await check_forwarded_url(f"image_urls[{i}]", url, allowlist)  # NanoBanana fetches them, not we
        body = {"prompt": inp.prompt, "type": "IMAGETOIAMGE" if inp.image_urls else "TEXTTOIAMGE",
                "imageUrls": inp.image_urls, "numImages": 1, "image_size": inp.size,
                "callBackUrl": self.config.callback_url}
        submitted = await self.request_json("POST", f"{base}/api/v1/nanobanana/generate", json=body, headers=headers)
        provider_id = str(self._check_code(submitted, "generate").get("taskId") or "")
        if not provider_id:
            raise self._fail("generate: answered without a taskId")
        await self.report_progress(0.05, "submitted to NanoBanana")
        image_url = await self._poll(base, provider_id, headers, self.config.poll_interval_seconds)
        data, content_type = await fetch_public("result image", image_url, max_bytes=MAX_IMAGE_BYTES,
                                                timeout_s=self.request_timeout_s, allowlist=allowlist)
        content_type = content_type.split(";")[0].strip()
        if not content_type.startswith("image/"):
            raise self._fail(f"result image: content type {content_type!r} is not an image")
        suffix = mimetypes.guess_extension(content_type) or ".img"
        stored = await self.save_output(f"image{suffix}", data, content_type)
        await self.report_progress(1.0, "image stored")
        return NanoBananaOutput(image=OutputFile(**stored), provider_task_id=provider_id)

    async def _poll(self, base: str, provider_id: str, headers: dict[str, str], interval_s: float) -> str:
        started = time.monotonic()
        while True:
            record = await self.request_json("GET", f"{base}/api/v1/nanobanana/record-info",
                                             params={"taskId": provider_id}, headers=headers)
            data = self._check_code(record, "record-info")
            flag = data.get("successFlag")
            if flag == 1:
                url = (data.get("response") or {}).get("resultImageUrl")
                if not url:
                    raise self._fail("record-info: finished without a resultImageUrl")
                return url
            if flag in (2, 3):
                raise self._fail(f"generation failed: {data.get('errorMessage') or 'no reason given'}")
            elapsed = time.monotonic() - started
            if not await self.report_progress(min(0.9, 0.05 + elapsed / _TYPICAL_S), "generating"):
                raise asyncio.CancelledError  # the task was cancelled meanwhile
            await asyncio.sleep(interval_s)
