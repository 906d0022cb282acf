"""Base for algorithms that call a paid third-party HTTP API.

One pooled ``httpx.AsyncClient`` per replica, a timeout on every request, and
bounded retries with exponential backoff on 429 and 5xx (honouring
``Retry-After``), through stamina like every retry in algo-mcp. API keys are the
algorithm's own ``Config`` secrets, read from the environment, and scrubbed from
anything that could reach a caller or a log.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import httpx

from engines.algorithms.base import Algorithm
from engines.errors import UpstreamFailed
from engines.retries import backoff

_MAX_BACKOFF_S = 10.0
_SNIPPET_CHARS = 200


class _RetryableAnswer(Exception):
    """One attempt failed in a way another may not (a timeout, a 429 or 5xx)."""

    def __init__(self, problem: str, retry_after_s: float | None = None) -> None:
        super().__init__(problem)
        self.problem, self.retry_after_s = problem, retry_after_s


def _backoff(exc: Exception) -> bool | float:
    """stamina's hook: retry retryable answers, after the API's own ``Retry-After`` when it gave one."""
    if not isinstance(exc, _RetryableAnswer):
        return False
    return True if exc.retry_after_s is None else min(exc.retry_after_s, _MAX_BACKOFF_S)


class ExternalAPI(Algorithm):
    """An algorithm whose work is done by someone else's HTTP API."""

    idempotent = False
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

    @classmethod
    def starts_slowly(cls) -> bool:
        return cls.setup is not ExternalAPI.setup

    def require(self, field: str) -> Any:
        """A ``Config`` field's value, or a clear error naming the environment variable to set."""
        return self.config.require(field, type(self).__name__)

    def _scrub(self, text: str) -> str:
        for secret in self.config.secret_values():
            text = text.replace(secret, "***")
        return text

    def _fail(self, what: str) -> UpstreamFailed:
        return UpstreamFailed(self._scrub(f"{type(self).__name__}: {what}"))

    async def _send(self, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, bytes]:
        """One request, its body read only up to ``max_response_bytes``."""
        async with self._client.stream(method, url, **kwargs) as resp:
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > self.max_response_bytes:
                    raise self._fail(f"answered with more than {self.max_response_bytes} bytes")
            return resp, bytes(body)

    async def _attempt(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            resp, body = await self._send(method, url, **kwargs)
        except httpx.TimeoutException:
            raise _RetryableAnswer(f"timed out after {self.request_timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise _RetryableAnswer(f"could not reach the API ({type(exc).__name__})") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            retry_after = resp.headers.get("retry-after", "")
            raise _RetryableAnswer(f"answered HTTP {resp.status_code}",
                                   float(retry_after) if retry_after.isdigit() else None)
        if resp.status_code >= 400:
            detail = "the API key was rejected" if resp.status_code in (401, 403) else \
                body[:_SNIPPET_CHARS].decode(errors="replace")
            raise self._fail(f"answered HTTP {resp.status_code}: {detail}")
        try:
            return json.loads(body)
        except ValueError:
            raise self._fail("answered with a body that is not JSON") from None

    async def request_json(self, method: str, url: str, **kwargs: Any) -> Any:
        """Send one request with retries; return the decoded JSON body or raise UpstreamFailed."""
        attempts = self.max_retries + 1
        retrying = backoff(attempts=attempts, initial_s=self.backoff_s, max_s=_MAX_BACKOFF_S, jitter_s=self.backoff_s)
        try:
            return await retrying(_backoff, self._attempt, method, url, **kwargs)
        except _RetryableAnswer as last:
            raise self._fail(f"{last.problem} ({attempts} attempts)") from None
