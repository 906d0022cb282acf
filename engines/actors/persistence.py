"""When an actor's state is written: its checkpoint policy, and when an idle actor is passivated.

A template declares it (``@actorless(checkpoint=…)``); a registry entry may
override it per deployment, so an operator trades durability for write cost
without touching the template's code:

- ``every_call`` (the default): after each writing call, before it is answered;
  no acknowledged update is ever lost.
- ``periodic``: after ``every_calls`` writing calls or ``every_s`` seconds after
  the first unsaved one, whichever comes first; a host that dies loses at most
  that much.
- ``on_passivation``: only when the actor is passivated (idle or evicted); what
  the Actorless seed does. A host that dies loses every update since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from engines.errors import RegistryError

Checkpoint = Literal["every_call", "periodic", "on_passivation"]


@dataclass(frozen=True)
class Persistence:
    checkpoint: Checkpoint = "every_call"
    every_calls: int | None = None  # periodic: after this many writing calls
    every_s: float | None = None  # periodic: this long after the first unsaved call
    idle_timeout_s: float = 300.0  # passivated after this long without a call

    def check(self, where: str) -> Persistence:
        """Itself, or a RegistryError naming the rule it breaks."""
        if self.checkpoint == "periodic" and self.every_calls is None and self.every_s is None:
            raise RegistryError(f"{where}: checkpoint 'periodic' needs checkpoint_every (calls) or "
                                "checkpoint_every_s (seconds)")
        if self.checkpoint != "periodic" and (self.every_calls is not None or self.every_s is not None):
            raise RegistryError(f"{where}: checkpoint_every and checkpoint_every_s apply only to checkpoint "
                                f"'periodic' (got {self.checkpoint!r})")
        if self.every_calls is not None and self.every_calls < 1:
            raise RegistryError(f"{where}: checkpoint_every must be at least 1 (got {self.every_calls})")
        if self.every_s is not None and self.every_s <= 0:
            raise RegistryError(f"{where}: checkpoint_every_s must be positive (got {self.every_s})")
        if self.idle_timeout_s <= 0:
            raise RegistryError(f"{where}: idle_timeout_s must be positive (got {self.idle_timeout_s})")
        return self

    def after_call(self, unsaved: int) -> bool:
        """Whether a writing call that leaves ``unsaved`` calls unwritten is checkpointed before its answer."""
        return self.checkpoint == "every_call" or (self.every_calls is not None and unsaved >= self.every_calls)

    def overdue(self, unsaved_for_s: float) -> bool:
        """Whether unsaved calls this old are checkpointed now (by the host's housekeeping)."""
        return self.every_s is not None and unsaved_for_s >= self.every_s
