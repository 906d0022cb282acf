"""Deliver a finished task's record to its ``callback_url`` (S1), signed and retried.

The body is the public task record as JSON; ``X-Algo-MCP-Signature`` carries
``sha256=<hex HMAC of the body with CALLBACK_SECRET>`` so receivers can check it
came from us. Failures are logged, never raised: the task has already ended.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from engines.errors import ValidationFailed
from engines.net.safe_url import post_public
from engines.retries import backoff
from engines.settings import get_settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Algo-MCP-Signature"
ATTEMPTS = 5
TIMEOUT_S = 10.0


class _NotDelivered(Exception):
    """The receiver answered, but not with 2xx."""


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

    async def attempt() -> None:
        status = await post_public("callback_url", url, body, headers, timeout_s=TIMEOUT_S, allowlist=allowlist)
        if not 200 <= status < 300:
            raise _NotDelivered(f"HTTP {status}")

    try:
        await backoff(attempts=ATTEMPTS, initial_s=0.5, max_s=8.0, jitter_s=0.5).on(
            (ValidationFailed, _NotDelivered))(attempt)
    except (ValidationFailed, _NotDelivered) as last:
        log.warning("callback for task %s given up after %d attempts: %s", record.get("task_id"), ATTEMPTS, last)
        return False
    return True
