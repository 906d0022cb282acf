"""The one way algo-mcp runs something periodically: heartbeats, lease renewal, supervisors, waits.

A failing step is logged (once when it starts failing, once when it works
again) and the loop goes on; only cancellation stops it, or a step that
returns True ("done"). Retries with backoff are stamina's job, not this one's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[bool | None]]


async def every(interval_s: float, step: Step, *, what: str, first_after_s: float = 0.0) -> None:
    """Run ``step`` every ``interval_s`` until it returns True or the caller is cancelled."""
    failing = False
    if first_after_s > 0:
        await asyncio.sleep(first_after_s)
    while True:
        try:
            done = await step()
        except Exception as exc:
            if not failing:
                log.warning("%s failed (%s: %s); trying again every %g s", what, type(exc).__name__, exc,
                            interval_s)
            failing = True
        else:
            if failing:
                log.info("%s works again", what)
            failing = False
            if done:
                return
        await asyncio.sleep(interval_s)
