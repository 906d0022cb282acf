"""One exception hierarchy for every failure a caller can see.

The gateway maps these once to MCP tool errors and once to HTTP status codes
(see ``mcp_server.errors``); nothing else catches and reformats them. Messages
are written for the caller: they say what was wrong and what to do, and never
carry secrets.
"""

from __future__ import annotations

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


class UnknownAlgorithm(AlgoError):
    http_status = 404
    code = "unknown_algorithm"

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.known = sorted(known)
        super().__init__(f"no algorithm named {name!r}; known: {', '.join(self.known)}")

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "known": self.known}


class Busy(AlgoError):
    """Every slot and queue place is taken; the caller should come back later."""

    http_status = 429
    code = "busy"

    def __init__(self, name: str, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"{name} is busy, retry after {retry_after_s} s")

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retry_after_s": self.retry_after_s}


class NotConfigured(AlgoError):
    """A setting the algorithm needs (an API key, a URL, a GPU) is missing."""

    http_status = 503
    code = "not_configured"


class Unavailable(AlgoError):
    """Something the call needs is not there right now (a deployment still starting or failed,
    the task store unreachable); retrying later may work."""

    http_status = 503
    code = "unavailable"


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


class UpstreamFailed(AlgoError):
    """An external API answered with an error or not at all."""

    http_status = 502
    code = "upstream_failed"


class TimedOut(AlgoError):
    http_status = 504
    code = "timed_out"

    def __init__(self, name: str, timeout_s: float) -> None:
        super().__init__(f"{name} timed out after {timeout_s:g} s")


class RegistryError(AlgoError):
    """A registry entry is wrong; start-up stops with this message."""

    code = "registry_error"
