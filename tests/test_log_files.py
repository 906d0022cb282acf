"""Log files for real: rotation by size into gzip files, retention by age, and several processes
writing one file at once without losing a line."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import sys
from pathlib import Path

from engines.logs import LogFile
from tests.conftest import ROOT


def read_all(folder: Path, name: str) -> list[str]:
    """Every line of ``name`` and its rotated files, oldest file first."""
    def order(path: Path) -> tuple[str, int]:  # <name>.<date>.gz, then <name>.<date>.1.gz, .2.gz …
        date, _, counter = path.name[len(name) + 1:-len(".gz")].partition(".")
        return date, int(counter or 0)

    rotated = sorted(folder.glob(f"{name}.*.gz"), key=order)
    text = "".join(gzip.decompress(p.read_bytes()).decode() for p in rotated)
    return (text + (folder / name).read_text()).splitlines()


def test_a_full_file_is_rotated_into_gzip_files_that_hold_every_line(tmp_path: Path):
    log = LogFile(tmp_path / "svc.log", "json", max_bytes=2048, retention_days=7)
    for i in range(300):
        log.write(request_id=f"r{i}", status="ok")
    log.close()
    assert len(list(tmp_path.glob("svc.log.*.gz"))) >= 5
    lines = [json.loads(line) for line in read_all(tmp_path, "svc.log")]
    assert [line["request_id"] for line in lines] == [f"r{i}" for i in range(300)]
    assert all(line["time"].endswith("Z") for line in lines)


def test_rotated_files_past_the_retention_are_deleted_and_recent_ones_kept(tmp_path: Path):
    today = dt.date.today()
    old = [tmp_path / f"svc.log.{today - dt.timedelta(days=9)}.gz",
           tmp_path / f"svc.log.{today - dt.timedelta(days=8)}.3.gz"]
    kept = [tmp_path / f"svc.log.{today - dt.timedelta(days=2)}.gz", tmp_path / "svc.log.notes.txt"]
    for path in (*old, *kept):
        path.write_bytes(gzip.compress(b"earlier\n"))
    log = LogFile(tmp_path / "svc.log", "text", max_bytes=1024, retention_days=7)
    for i in range(40):  # past 1 KiB: a rotation, which applies the retention
        log.write(n=i, target="POST /invoke/local-echo")
    log.close()
    assert not any(p.exists() for p in old)
    assert all(p.exists() for p in kept)
    assert list(tmp_path.glob(f"svc.log.{today}*.gz"))
    assert read_all(tmp_path, "svc.log")[-1].endswith(' n=39 target="POST /invoke/local-echo"')


WRITER = """
import sys
from pathlib import Path
from engines.logs import LogFile

log = LogFile(Path(sys.argv[1]), "text", max_bytes=4096, retention_days=7)
sys.stdin.readline()  # both start writing together
for i in range(int(sys.argv[3])):
    log.write(writer=sys.argv[2], n=i)
log.close()
"""


async def test_two_processes_writing_one_log_lose_no_line(tmp_path: Path):
    lines_each = 1500
    writers = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(tmp_path / "svc.log"), name, str(lines_each), cwd=ROOT,
        stdin=asyncio.subprocess.PIPE) for name in ("a", "b")]
    for proc in writers:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    assert [await asyncio.wait_for(p.wait(), 120) for p in writers] == [0, 0]
    lines = read_all(tmp_path, "svc.log")
    seen = sorted(line.split(" ", 1)[1] for line in lines)
    assert seen == sorted(f"writer={w} n={i}" for w in ("a", "b") for i in range(lines_each))
    assert len(list(tmp_path.glob("svc.log.*.gz"))) > 10  # they rotated it many times between them
