"""The local cluster: one Ray and one bundled Redis per data folder, shared by every gateway on it.

Without ``RAY_ADDRESS`` (or ``REDIS_URL``) a gateway does not start Ray or Redis
itself: it joins the *keeper* of its ``DATA_DIR``, a small detached process
(``python -m engines.local_cluster keep``) that runs them, or spawns one. So
two desktop windows share one Ray and one Redis, a gateway started while an
earlier one's cluster still runs is up in seconds (its deployments are still
there), and nothing the gateway prints or leaves behind reaches its stdout.

The keeper stops everything once no gateway has used it for
``LOCAL_CLUSTER_LINGER_S`` (0: at once). Gateways say they use it by holding a
shared ``flock`` on ``cluster/users.lock`` for their whole life; the kernel
drops it when a gateway exits, however it exits, so the keeper needs no
goodbye. Files under ``DATA_DIR/cluster/``:

=============  ==========================================================
``state.json``  the keeper's pid, status, Redis URL and Ray address
``keeper.lock`` held (exclusive) by the live keeper: one per data folder
``users.lock``  held (shared) by every gateway using the cluster
``keeper.log``  the keeper's and Ray's own output (the previous run's: .1)
=============  ==========================================================

``algo-mcp cluster status`` shows it; ``algo-mcp cluster stop`` stops it now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from engines.errors import Unavailable
from storage.redis_server import pid_alive

log = logging.getLogger(__name__)

Service = Literal["ray", "redis"]
Status = Literal["starting", "ready", "failed", "stopping", "stopped"]
CLUSTER_DIR = "cluster"
_POLL_S = 0.1
_KEEPER_TICK_S = 0.5
_LOCK_WAIT_S = 120.0
_SPAWN_GRACE_S = 30.0  # a keeper takes its lock within a second of starting; past this it is stuck


@dataclass
class ClusterState:
    """What the keeper tells gateways, in ``state.json``."""

    pid: int
    services: list[str]
    linger_s: float
    status: Status = "starting"
    redis_url: str | None = None
    ray_address: str | None = None
    error: str | None = None
    started_at: float = field(default_factory=time.time)

    def alive(self) -> bool:
        return self.status not in ("failed", "stopped") and pid_alive(self.pid)


class _Files:
    """The keeper's files for one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = Path(data_dir).resolve() / CLUSTER_DIR
        self.state, self.log = self.dir / "state.json", self.dir / "keeper.log"
        self.keeper_lock, self.users_lock = self.dir / "keeper.lock", self.dir / "users.lock"

    def open_lock(self, path: Path) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children (PEP 446)

    def read_state(self) -> ClusterState | None:
        try:
            return ClusterState(**json.loads(self.state.read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def write_state(self, state: ClusterState) -> None:
        tmp = self.state.with_name(f".state.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(asdict(state)))
        os.replace(tmp, self.state)


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def keeper_running(data_dir: Path) -> bool:
    """A keeper holds the data folder's lock (it may not have written its state yet)."""
    files = _Files(data_dir)
    if not files.keeper_lock.exists():
        return False
    fd = files.open_lock(files.keeper_lock)
    try:
        return not _try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # releases the lock if this probe took it


def in_use(data_dir: Path) -> bool:
    """Some gateway uses the cluster of ``data_dir`` now."""
    files = _Files(data_dir)
    fd = files.open_lock(files.users_lock)
    try:
        return not _try_lock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def current(data_dir: Path) -> ClusterState | None:
    """The running keeper's state, or None when no keeper runs for ``data_dir``."""
    state = _Files(data_dir).read_state()
    return state if state is not None and keeper_running(data_dir) and state.alive() else None


# -- the gateway's side -------------------------------------------------------


class LocalCluster:
    """A gateway's share of its data folder's local cluster, from :meth:`join` until :meth:`leave`."""

    def __init__(self, data_dir: Path, services: set[Service], linger_s: float) -> None:
        self.files = _Files(data_dir)
        self.services, self.linger_s = services, linger_s
        self._users_fd: int | None = None
        self._joined_at = 0.0
        self._keeper: subprocess.Popen | None = None
        self._spawned_at = 0.0

    @property
    def spawned(self) -> bool:
        """This gateway started the keeper (a cold start), rather than joining a running one."""
        return self._keeper is not None

    async def join(self) -> None:
        """Say this gateway uses the cluster, and start a keeper if none runs."""
        fd = self.files.open_lock(self.files.users_lock)
        deadline = time.monotonic() + _LOCK_WAIT_S
        while not _try_lock(fd, fcntl.LOCK_SH):  # a keeper is stopping the last cluster: wait it out
            if time.monotonic() > deadline:
                os.close(fd)
                raise Unavailable(f"the local cluster in {self.files.dir} is still stopping after "
                                  f"{_LOCK_WAIT_S:g} s; see {self.files.log}")
            await asyncio.sleep(_POLL_S)
        self._users_fd, self._joined_at = fd, time.time()
        if not keeper_running(self.files.dir.parent):
            self._spawn()

    def _spawn(self) -> None:
        self.files.dir.mkdir(parents=True, exist_ok=True)
        if self.files.log.exists():
            os.replace(self.files.log, self.files.log.with_suffix(".log.1"))
        with open(self.files.log, "ab") as out:
            self._keeper = subprocess.Popen(
                [sys.executable, "-m", "engines.local_cluster", "keep", "--data-dir", str(self.files.dir.parent),
                 "--services", ",".join(sorted(self.services)), "--linger", str(self.linger_s)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._spawned_at = time.monotonic()
        log.info("local cluster: started keeper pid %d for %s", self._keeper.pid, self.files.dir)

    async def address(self, service: Service) -> str:
        """The service's address once the keeper has it up (Redis in about a second, Ray in 10 to 20 s)."""
        while True:
            if self._keeper is not None:
                self._keeper.poll()  # reap a keeper of ours that ended, so it does not look alive
            state = self.files.read_state()
            if state is not None and state.alive():
                found = self._from(state, service)
                if found:
                    return found
            elif state is not None and state.status == "failed" and state.started_at >= self._joined_at - 1:
                raise Unavailable(f"the local cluster failed to start: {state.error} (see {self.files.log})")
            elif not keeper_running(self.files.dir.parent) and not self._starting():
                self._spawn()  # the keeper died or stopped before it was of use: start another
            await asyncio.sleep(_POLL_S)

    def _from(self, state: ClusterState, service: Service) -> str | None:
        missing = self.services - set(state.services)
        if missing:
            raise Unavailable(
                f"the local cluster in {self.files.dir} (keeper pid {state.pid}) runs no "
                f"{', '.join(sorted(missing))}: the gateway that started it had "
                f"{'RAY_ADDRESS' if 'ray' in missing else 'REDIS_URL'} set. Set it here too, use "
                "another DATA_DIR, or stop that cluster (algo-mcp cluster stop)")
        return state.redis_url if service == "redis" else state.ray_address

    def _starting(self) -> bool:
        """A keeper this gateway spawned has not yet taken its lock (or given up)."""
        return self._keeper is not None and self._keeper.poll() is None \
            and time.monotonic() - self._spawned_at < _SPAWN_GRACE_S

    def leave(self) -> None:
        """Stop using the cluster; the keeper stops it after the linger if nobody else does."""
        if self._users_fd is not None:
            os.close(self._users_fd)  # releases the shared lock
            self._users_fd = None
        if self._keeper is not None:
            self._keeper.poll()  # reap it if it has ended


# -- the keeper ---------------------------------------------------------------


class _Keeper:
    def __init__(self, data_dir: Path, services: list[str], linger_s: float) -> None:
        self.files = _Files(data_dir)
        self.state = ClusterState(pid=os.getpid(), services=services, linger_s=linger_s)
        self.stop = threading.Event()
        self.redis = None
        self.ray_started = False

    def run(self) -> int:
        lock = self.files.open_lock(self.files.keeper_lock)
        if not _try_lock(lock, fcntl.LOCK_EX):
            return 0  # another keeper won the race: it serves this folder
        self.files.write_state(self.state)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
        users = self.files.open_lock(self.files.users_lock)
        try:
            self._start()
            self.state.status = "ready"
            self.files.write_state(self.state)
            log.info("ready: %s", self.state)
            self._watch(users)
        except BaseException as exc:
            log.exception("the local cluster failed")
            self.state.status, self.state.error = "failed", f"{type(exc).__name__}: {exc}"
            self.files.write_state(self.state)
            return 1
        finally:
            self._shutdown()
        return 0

    def _start(self) -> None:
        from engines.serving.cluster import prepare_env, start_local
        from engines.settings import Settings
        from storage import EmbeddedRedis

        if "redis" in self.state.services:
            self.redis = EmbeddedRedis(self.files.dir.parent / "redis")
            self.state.redis_url = self.redis.start()
            self.files.write_state(self.state)
        if "ray" in self.state.services and not self.stop.is_set():
            prepare_env(Settings())
            self.ray_started = True
            self.state.ray_address = start_local()
            for signum in (signal.SIGTERM, signal.SIGINT):  # ray.init set its own: ours stop in order
                signal.signal(signum, lambda *_: self.stop.set())

    def _watch(self, users: int) -> None:
        """Keep Redis alive; stop once nobody has used the cluster for the linger."""
        idle_since: float | None = None
        while not self.stop.wait(_KEEPER_TICK_S):
            if self.redis is not None and self.redis.died:
                log.warning("the bundled Redis died; starting it again on the same port and file")
                self.redis.revive()
            if not _try_lock(users, fcntl.LOCK_EX):
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= self.state.linger_s:
                log.info("no gateway for %g s: stopping", self.state.linger_s)
                return  # the lock stays held: a gateway arriving now waits for the stop, then starts anew
            fcntl.flock(users, fcntl.LOCK_UN)

    def _shutdown(self) -> None:
        if self.state.status != "failed":
            self.state.status = "stopping"
            self.files.write_state(self.state)
        if self.ray_started:
            import ray
            from ray import serve

            with contextlib.suppress(Exception):
                serve.shutdown()
            ray.shutdown()
        if self.redis is not None:
            self.redis.stop()
        if self.state.status != "failed":
            self.state.status = "stopped"
            self.files.write_state(self.state)


def stop(data_dir: Path, timeout_s: float = 60.0) -> ClusterState | None:
    """Stop the keeper of ``data_dir`` now (gateways using it lose Ray and Redis); its last state."""
    state = current(data_dir)
    if state is None:
        return None
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(state.pid) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    return _Files(data_dir).read_state()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.local_cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    keep = sub.add_parser("keep", help="run the local cluster of a data folder (gateways start this)")
    keep.add_argument("--data-dir", type=Path, required=True)
    keep.add_argument("--services", required=True, help="comma-separated: ray, redis")
    keep.add_argument("--linger", type=float, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s keeper: %(message)s")
    services = [s for s in args.services.split(",") if s]
    return _Keeper(args.data_dir, services, args.linger).run()


if __name__ == "__main__":
    sys.exit(main())
