"""What of the runtime is up, what is still starting, and about how long the rest will take.

The gateway answers ``initialize`` and ``tools/list`` at once and starts Redis,
Ray and the deployments in the background; every part is a *phase* here. A call
that needs a phase waits for it within its budget (reporting "starting:
text-embedding deploying, 4 of 7 ready" meanwhile), or is told at once that it
will not be ready in time, with an estimate. Estimates come from how long each
phase took the last time (kept in ``DATA_DIR/startup-times.json``), else from
defaults typical of a small machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engines.errors import Starting, Unavailable

log = logging.getLogger(__name__)

State = Literal["waiting", "starting", "ready", "failed"]
TASKS, RAY = "task store", "ray"
_PROGRESS_EVERY_S = 1.0

Progress = Callable[[str], Awaitable[None]]


@dataclass
class Phase:
    name: str
    needs: str | None  # the phase it cannot start before
    typical_s: float  # how long it takes when nothing better is known
    state: State = "waiting"
    reason: str = ""
    began: float | None = None  # monotonic, when it started starting
    took_s: float | None = None


@dataclass
class Readiness:
    """Phases of one runtime's start, in the order they start."""

    times_file: Path | None = None
    phases: dict[str, Phase] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._changed = asyncio.Event()
        self._expected = self._read_times()

    # -- the runtime reports --------------------------------------------------

    def add(self, name: str, typical_s: float, needs: str | None = None) -> None:
        """``typical_s``: how long it takes on a small machine, until a start here has measured it."""
        self.phases.setdefault(name, Phase(name, needs, typical_s))

    def starting(self, name: str) -> None:
        phase = self.phases[name]
        phase.state, phase.began = "starting", time.monotonic()
        self._notify()

    def ready(self, name: str, *, typical: bool = True) -> None:
        """``typical``: this start is what the next one will cost (not a reuse of what ran already)."""
        phase = self.phases[name]
        if phase.began is not None and typical:
            phase.took_s = time.monotonic() - phase.began
        phase.state, phase.reason = "ready", ""
        self._notify()

    def failed(self, name: str, reason: str) -> None:
        phase = self.phases[name]
        phase.state, phase.reason = "failed", reason
        log.warning("%s: %s", name, reason)
        self._notify()

    def fail_unsettled(self, names: Iterable[str], reason: str) -> None:
        """Everything of ``names`` not yet up cannot come up (what they need failed)."""
        for name in names:
            if self.phases[name].state in ("waiting", "starting"):
                self.failed(name, reason)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- callers ask ----------------------------------------------------------

    def is_ready(self, name: str) -> bool:
        phase = self.phases.get(name)
        return phase is not None and phase.state == "ready"

    @property
    def settled(self) -> bool:
        """Every phase is up or has failed: start-up is over."""
        return all(p.state in ("ready", "failed") for p in self.phases.values())

    def summary(self) -> str:
        """One line for a waiting caller, e.g. ``text-embedding deploying, 4 of 7 ready``."""
        ready = sum(p.state == "ready" for p in self.phases.values())
        busy = [p.name for p in self.phases.values() if p.state == "starting"]
        doing = f"{', '.join(busy)} starting, " if busy else ""
        return f"{doing}{ready} of {len(self.phases)} ready"

    def left_s(self, name: str) -> float:
        """About how long until ``name`` is up, counting what it waits for."""
        phase = self.phases[name]
        expected = self._expected.get(name, phase.typical_s)
        if phase.state == "ready":
            return 0.0
        before = self.left_s(phase.needs) if phase.needs and phase.needs in self.phases else 0.0
        if phase.state == "starting" and phase.began is not None:
            return max(1.0, expected - (time.monotonic() - phase.began))
        return before + expected

    async def wait(self, name: str, budget_s: float, progress: Progress | None = None) -> None:
        """Return once ``name`` is up; raise :class:`Starting` at once if it will not be within
        ``budget_s`` (or when the budget runs out), :class:`Unavailable` if it failed."""
        deadline = time.monotonic() + budget_s
        while True:
            phase = self.phases[name]
            if phase.state == "ready":
                return
            if phase.state == "failed":
                raise Unavailable(f"{name}: {phase.reason}")
            left, remaining = self.left_s(name), deadline - time.monotonic()
            if left > remaining + _PROGRESS_EVERY_S or remaining <= 0:
                raise Starting(name, left, self.summary())
            if progress is not None:
                await progress(f"starting: {self.summary()}")
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=min(_PROGRESS_EVERY_S, max(remaining, 0.01)))

    def report(self) -> dict[str, dict[str, object]]:
        """Each phase's state (and why it failed), for ``/healthz``."""
        return {p.name: {"status": p.state, **({"message": p.reason} if p.reason else {})}
                for p in self.phases.values()}

    # -- estimates that improve with each start --------------------------------

    def _read_times(self) -> dict[str, float]:
        try:
            data = json.loads(self.times_file.read_text()) if self.times_file else {}
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            return {}

    def save_times(self) -> None:
        """Keep what each phase took this time, for the next start's estimates."""
        if self.times_file is None:
            return
        took = {p.name: round(p.took_s, 2) for p in self.phases.values() if p.took_s is not None}
        try:
            self.times_file.parent.mkdir(parents=True, exist_ok=True)
            self.times_file.write_text(json.dumps({**self._expected, **took}, sort_keys=True))
        except OSError as exc:
            log.info("could not keep start-up times in %s: %s", self.times_file, exc)
