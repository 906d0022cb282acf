"""Deliver a finished task's record to its ``callback_url`` (S1), signed and retried.

The body is the public task record as JSON; ``X-Algo-MCP-Signature`` carries
``sha256=<hex HMAC of the body with CALLBACK_SECRET>`` so receivers can check it
came from us. Failures are logged, never raised: the task has already ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import httpx

from engines.errors import ValidationFailed
from engines.safe_url import check_public_url
from engines.settings import get_settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Algo-MCP-Signature"
ATTEMPTS = 5
TIMEOUT_S = 10.0


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def deliver_callback(url: str, record: dict[str, Any], secret: str | None) -> bool:
    """POST ``record`` to ``url`` with backoff; True once the receiver answered 2xx."""
    try:
        await check_public_url("callback_url", url, get_settings().fetch_allowlist)
    except ValidationFailed as err:
        log.warning("callback for task %s not sent: %s", record.get("task_id"), err.message)
        return False
    body = json.dumps(record, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    async with httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False) as http:
        for attempt in range(ATTEMPTS):
            try:
                response = await http.post(url, content=body, headers=headers)
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
            log.info("callback for task %s: %s (attempt %d)", record.get("task_id"), problem, attempt + 1)
            await asyncio.sleep(min(0.5 * 2**attempt, 8))
    log.warning("callback for task %s given up after %d attempts", record.get("task_id"), ATTEMPTS)
    return False
