"""The one way tests wait for something: poll a probe with a deadline, never a bare sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def poll(probe: Callable[[], T | Awaitable[T]], timeout_s: float = 30.0, interval_s: float = 0.05,
               what: str = "condition") -> T:
    """Call ``probe`` (plain or async) until it returns something truthy, and return that;
    fail with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"{what} not met within {timeout_s:g} s"
        await asyncio.sleep(interval_s)
