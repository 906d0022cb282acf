"""Every failure a caller can see, as one hierarchy.

* AlgoError                  500 internal
  + ValidationFailed         422 the input broke a rule; ``problems`` lists ``field: rule`` lines
  + TaskFailed               422 a task ended without a result (an auto-mode answer)
  + Unauthorized             401 no or a wrong bearer token
  + Forbidden                403 a signed link that is unsigned, altered or expired
  + UnknownAlgorithm         404 no such algorithm (REST route); names the closest ones
    x UnknownTool            404 no such MCP tool; names the closest ones
    x UnknownMethod          404 no such method on an actor template; names the closest ones
  + UnknownTask              404 no such task (or it expired)
  + UnknownActor             404 no actor bound under that id
  + AlreadyBound             409 the id is bound already, to other arguments or another template
  + UnknownPipeline          404 no pipeline by that name
  + PipelineConflict         409 a pipeline by that name runs with another spec
  + ActorCallFailed          422 an actor's method raised; its state is back to the last checkpoint
  + NotFound                 404 no such stored object
  + TooLarge                 413 a request body past ``MAX_REQUEST_BYTES``
  + Busy                     429 every slot and queue place is taken; retry after N s
  + UpstreamFailed           502 an external API failed
  + NotConfigured            503 a setting, key or GPU the algorithm needs is missing
  + Unavailable              503 retry later: something the call needs is not there right now
    x Starting               503 the algorithm (or the runtime) is still starting
    x ReplicaUnavailable     503 its replica died during the call, or none is running
    x ReplicaLost            503 a task whose replica was lost on every attempt
    x ActiveElsewhere        503 the actor is active on another host (the client calls that one)
    x LeaseLost              503 a host lost an actor to a newer activation; the call did not count
  + TimedOut                 504 a call or task ran past its ``timeout_s``
  + RegistryError            --  a registry entry is wrong: start-up stops (exit 2)
  + CannotListen             --  the gateway's port is taken: start-up stops (exit 2)

The gateway maps them to MCP tool errors and to HTTP answers in one place
(``mcp_server.errors``). Messages are written for the caller: what was wrong and
what to do, never a secret. Errors pickle across Ray with their fields.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence


class AlgoError(Exception):
    """Base of every error algo-mcp reports to a caller."""

    http_status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, object]:
        return {"type": self.code, "message": self.message}

    @property
    def retry_after_s(self) -> int | None:
        """Seconds after which the same call may succeed; None when retrying will not help."""
        return None

    def __reduce__(self):  # keep subclass and fields across Ray's pickling
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(cls: type[AlgoError], state: dict) -> AlgoError:
    err = cls.__new__(cls)
    Exception.__init__(err, state.get("message", ""))
    err.__dict__.update(state)
    return err


class ValidationFailed(AlgoError):
    """The input broke a rule; ``problems`` lists ``field: rule`` lines."""

    http_status = 422
    code = "validation_failed"

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "problems": self.problems}


class TaskFailed(AlgoError):
    """A task ended without a result; carries the task's own error (type and message)."""

    http_status = 422
    code = "task_failed"

    def __init__(self, error: dict[str, object]) -> None:
        self.error = error
        super().__init__(str(error.get("message") or "the task failed"))

    def to_dict(self) -> dict[str, object]:
        return {"type": self.code, **self.error}


class Unauthorized(AlgoError):
    http_status = 401
    code = "unauthorized"


class Forbidden(AlgoError):
    http_status = 403
    code = "forbidden"


def closest(name: str, known: Sequence[str], n: int = 3) -> list[str]:
    """The known names nearest to a misspelt one, best first."""
    return difflib.get_close_matches(name, known, n=n, cutoff=0.6)


class UnknownAlgorithm(AlgoError):
    """No algorithm by that name; says which registered ones are nearest."""

    http_status = 404
    code = "unknown_algorithm"
    what = "algorithm"

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.known = sorted(known)
        self.did_you_mean = closest(name, self.known)
        hint = f"did you mean {' or '.join(repr(n) for n in self.did_you_mean)}? " if self.did_you_mean else ""
        super().__init__(f"no {self.what} named {name!r}; {hint}known: {', '.join(self.known)}")

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "known": self.known, "did_you_mean": self.did_you_mean}


class UnknownTool(UnknownAlgorithm):
    """An MCP tool name nobody registered (a misspelling, an old name)."""

    code = "unknown_tool"
    what = "tool"


class UnknownMethod(UnknownAlgorithm):
    code = "unknown_method"
    what = "method"


class UnknownTask(AlgoError):
    http_status = 404
    code = "unknown_task"

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task {task_id!r} (it may have expired)")


class UnknownActor(AlgoError):
    http_status = 404
    code = "unknown_actor"

    def __init__(self, actor_id: str) -> None:
        self.actor_id = actor_id
        super().__init__(f"no actor bound under id {actor_id!r}; bind it first (actor_bind)")


class AlreadyBound(AlgoError):
    http_status = 409
    code = "already_bound"


class UnknownPipeline(AlgoError):
    http_status = 404
    code = "unknown_pipeline"

    def __init__(self, name: str, known: Sequence[str]) -> None:
        near = closest(name, known)
        hint = f"; did you mean {', '.join(near)}?" if near else (
            f"; known: {', '.join(sorted(known)[:20])}" if known else "; none is declared or started yet")
        super().__init__(f"no pipeline {name!r}{hint}")


class PipelineConflict(AlgoError):
    http_status = 409
    code = "conflict"


class ActorCallFailed(AlgoError):
    """The actor's own code raised: the call is not acknowledged and its state stays as last checkpointed."""

    http_status = 422
    code = "actor_call_failed"


class NotFound(AlgoError):
    http_status = 404
    code = "not_found"


class TooLarge(AlgoError):
    http_status = 413
    code = "too_large"


class Busy(AlgoError):
    """Every slot and queue place is taken; the caller should come back later."""

    http_status = 429
    code = "busy"

    def __init__(self, name: str, retry_after_s: int) -> None:
        self._retry_after_s = retry_after_s
        super().__init__(f"{name} is busy, retry after {retry_after_s} s")

    @property
    def retry_after_s(self) -> int:
        return self._retry_after_s

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after_s": self.retry_after_s}


class UpstreamFailed(AlgoError):
    """An external API answered with an error or not at all."""

    http_status = 502
    code = "upstream_failed"


class NotConfigured(AlgoError):
    """A setting the algorithm needs (an API key, a URL, a GPU) is missing."""

    http_status = 503
    code = "not_configured"


class Unavailable(AlgoError):
    """Something the call needs is not there right now (a deployment that failed, the task
    store unreachable); retrying later may work."""

    http_status = 503
    code = "unavailable"

    @property
    def retry_after_s(self) -> int:
        return 5


class Starting(Unavailable):
    """The gateway answers at once but starts Ray, Redis and the deployments in the background;
    this call's algorithm (or what it needs) is not running yet and will not be within the call."""

    code = "starting"

    def __init__(self, what: str, left_s: float | None, detail: str = "") -> None:
        self.left_s = None if left_s is None else max(1, math.ceil(left_s))
        eta = f" (about {self.left_s} s left)" if self.left_s is not None else ""
        super().__init__(f"{what} is starting{eta}{'; ' + detail if detail else ''}; retry shortly")

    @property
    def retry_after_s(self) -> int:
        return min(self.left_s or 5, 30)

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after_s": self.retry_after_s}


class ReplicaUnavailable(Unavailable):
    """No replica could take or finish the call: one died during it (a crash, the OOM killer), or
    none is running. The call may or may not have run; a task worker runs it again while
    attempts remain."""

    DIED = "its replica died during the call (a crash or out of memory; see the replica's log)"
    NONE_RUNNING = "it has no running replica (its deployment failed; see /healthz)"

    def __init__(self, name: str, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{name}: {reason}; retry shortly")


class ReplicaLost(Unavailable):
    """A task whose replica was unavailable on every attempt it was allowed."""

    code = "replica_lost"

    def __init__(self, name: str, attempts: int, max_attempts: int, reason: str) -> None:
        super().__init__(f"{name}: gave up on attempt {attempts} of {max_attempts}: {reason}")


class ActiveElsewhere(Unavailable):
    """The actor is active on ``host``; the client sends the call there (never shown to a caller)."""

    code = "active_elsewhere"

    def __init__(self, actor_id: str, host: str) -> None:
        self.host = host
        super().__init__(f"actor {actor_id!r} is active on host {host}")


class LeaseLost(Unavailable):
    """A host lost an actor to a newer activation (it was paused or cut off past its lease): the call
    was not acknowledged, and no write of this host's can overwrite the newer one's."""

    code = "lease_lost"

    def __init__(self, actor_id: str) -> None:
        super().__init__(f"actor {actor_id!r} moved to another activation during the call, which did not "
                         "count; retry shortly")


class TimedOut(AlgoError):
    http_status = 504
    code = "timed_out"

    def __init__(self, name: str, timeout_s: float) -> None:
        super().__init__(f"{name} timed out after {timeout_s:g} s")


class RegistryError(AlgoError):
    """A registry entry is wrong; start-up stops with this message."""

    code = "registry_error"


class CannotListen(AlgoError):
    """The gateway's HTTP port cannot be taken; start-up stops with what to set."""

    code = "cannot_listen"
