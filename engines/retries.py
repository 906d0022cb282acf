"""The one retry policy: stamina's exponential backoff with jitter, for every retry in algo-mcp.

Retries are logged here, at INFO, by callable, attempt, wait and cause; never
with the call's arguments (stamina's own hook logs those, and they may hold an
API key or a callback secret). Importing this module installs that hook.
"""

from __future__ import annotations

import logging
from typing import Any

import stamina
from stamina.instrumentation import RetryDetails, set_on_retry_hooks

log = logging.getLogger(__name__)

#: a replica lost under a task, a Redis write that will not go through: back off up to this
MAX_PAUSE_S = 10.0


def _log_retry(details: RetryDetails) -> None:
    cause = details.caused_by
    log.info("retrying %s (retry %d) in %.1f s after %s: %.200s", details.name, details.retry_num,
             details.wait_for, type(cause).__name__, cause)


set_on_retry_hooks([_log_retry])


def backoff(*, attempts: int | None, initial_s: float = 1.0, max_s: float = MAX_PAUSE_S,
            jitter_s: float = 1.0) -> stamina.AsyncRetryingCaller:
    """Retry up to ``attempts`` times (None: until it works or the caller is cancelled)."""
    return stamina.AsyncRetryingCaller(attempts=attempts, timeout=None, wait_initial=initial_s, wait_max=max_s,
                                       wait_jitter=jitter_s)


def forever(on: type[Exception] | tuple[type[Exception], ...]) -> stamina.BoundAsyncRetryingCaller:
    """Retry on ``on`` until it works: for work that has nothing better to do meanwhile."""
    return backoff(attempts=None).on(on)


def retry_context(on: type[Exception] | tuple[type[Exception], ...], *, max_s: float = 2.0) -> Any:
    """``async for attempt in retry_context(...): with attempt: …``, until it works or the caller's deadline
    (for a loop that must know whether this is a retry, or change what it sends again)."""
    return stamina.retry_context(on=on, attempts=None, timeout=None, wait_initial=0.2, wait_max=max_s,
                                 wait_jitter=0.2)
