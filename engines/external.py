"""Base for algorithms that call a paid third-party HTTP API.

One pooled ``httpx.AsyncClient`` per replica, a timeout on every request, and
bounded retries with exponential backoff on 429 and 5xx (honouring
``Retry-After``). API keys come from the environment and are scrubbed from
anything that could reach a caller or a log.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any, ClassVar

import httpx

from engines.algorithm import Algorithm
from engines.errors import NotConfigured, UpstreamFailed
from engines.settings import get_settings

_MAX_BACKOFF_S = 10.0
_SNIPPET_CHARS = 200


class ExternalAPI(Algorithm):
    """An algorithm whose work is done by someone else's HTTP API."""

    idempotent = False
    #: settings (env names) the replica needs; forwarded to it by the deploy layer
    settings_used: ClassVar[tuple[str, ...]] = ()
    request_timeout_s: ClassVar[float] = 30.0
    max_retries: ClassVar[int] = 3
    backoff_s: ClassVar[float] = 0.5
    max_connections: ClassVar[int] = 64
    #: a JSON answer larger than this is a broken upstream, not worth the replica's memory
    max_response_bytes: ClassVar[int] = 8 * 1024 * 1024

    async def setup(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.request_timeout_s),
            limits=httpx.Limits(max_connections=self.max_connections,
                                max_keepalive_connections=self.max_connections),
        )

    async def close(self) -> None:
        await self._client.aclose()

    def require(self, setting: str) -> str:
        """The value of a setting, or a clear error telling the operator what to set."""
        value = getattr(get_settings(), setting.lower(), None)
        if value is None or value == "":
            raise NotConfigured(f"{type(self).__name__}: {setting} is not set on the server")
        return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)

    def secret(self, setting: str) -> str | None:
        """An optional secret setting (an API key some endpoints do without)."""
        value = getattr(get_settings(), setting.lower(), None)
        return value.get_secret_value() if value else None

    def _secrets(self) -> list[str]:
        settings = get_settings()
        values = (getattr(settings, s.lower(), None) for s in self.settings_used)
        return [v.get_secret_value() for v in values if hasattr(v, "get_secret_value") and v]

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, "***")
        return text

    def _fail(self, what: str) -> UpstreamFailed:
        return UpstreamFailed(self._scrub(f"{type(self).__name__}: {what}"))

    def _delay(self, attempt: int, resp: httpx.Response | None) -> float:
        retry_after = resp.headers.get("retry-after") if resp is not None else None
        if retry_after and retry_after.isdigit():
            return min(float(retry_after), _MAX_BACKOFF_S)
        return min(self.backoff_s * 2**attempt, _MAX_BACKOFF_S) * random.uniform(0.5, 1.0)

    async def _send(self, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, bytes]:
        """One request, its body read only up to ``max_response_bytes``."""
        async with self._client.stream(method, url, **kwargs) as resp:
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > self.max_response_bytes:
                    raise self._fail(f"answered with more than {self.max_response_bytes} bytes")
            return resp, bytes(body)

    async def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send one request with retries; return the decoded JSON body or raise UpstreamFailed."""
        problem = "no answer"
        for attempt in range(self.max_retries + 1):
            resp = None
            try:
                resp, body = await self._send(method, url, **kwargs)
            except httpx.TimeoutException:
                problem = f"timed out after {self.request_timeout_s:g} s"
            except httpx.TransportError as exc:
                problem = f"could not reach the API ({type(exc).__name__})"
            else:
                if resp.status_code == 429 or resp.status_code >= 500:
                    problem = f"answered HTTP {resp.status_code}"
                elif resp.status_code >= 400:
                    detail = "the API key was rejected" if resp.status_code in (401, 403) else \
                        body[:_SNIPPET_CHARS].decode(errors="replace")
                    raise self._fail(f"answered HTTP {resp.status_code}: {detail}")
                else:
                    try:
                        return json.loads(body)
                    except ValueError:
                        raise self._fail("answered with a body that is not JSON") from None
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, resp))
        raise self._fail(f"{problem} ({self.max_retries + 1} attempts)")
