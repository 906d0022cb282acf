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

from engines.errors import ValidationFailed
from engines.safe_url import post_public
from engines.settings import get_settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Algo-MCP-Signature"
ATTEMPTS = 5
TIMEOUT_S = 10.0


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def deliver_callback(url: str, record: dict[str, Any], secret: str | None) -> bool:
    """POST ``record`` to ``url`` with backoff; True once the receiver answered 2xx.

    Each attempt resolves and vets the address again and connects to exactly
    that address (no DNS rebinding), following no redirects.
    """
    body = json.dumps(record, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    allowlist = get_settings().fetch_allowlist
    for attempt in range(ATTEMPTS):
        try:
            status = await post_public("callback_url", url, body, headers, timeout_s=TIMEOUT_S, allowlist=allowlist)
        except ValidationFailed as err:
            problem = err.message
        else:
            if 200 <= status < 300:
                return True
            problem = f"HTTP {status}"
        log.info("callback for task %s: %s (attempt %d)", record.get("task_id"), problem, attempt + 1)
        await asyncio.sleep(min(0.5 * 2**attempt, 8))
    log.warning("callback for task %s given up after %d attempts", record.get("task_id"), ATTEMPTS)
    return False
