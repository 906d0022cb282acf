"""Log files that rotate by size and by day, gzip what they rotate, and keep it for N days.

Several gateways (processes) may share one ``LOG_DIR``: ``concurrent-log-handler``
takes a file lock around each write and rotation, so no line is lost or interleaved.
A line is a dict of fields, written as ``key=value`` text or one JSON object (for log
shippers). Writing from the event loop only enqueues: a thread owns the file, so a slow
disk or a held lock never stalls a call. Each :class:`LogFile` has its own logger (not
in ``logging``'s tree), so gateways in one process with different folders stay apart,
and nothing of it reaches stderr or stdout (stdio's protocol stream).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import re
import time
from logging.handlers import QueueHandler, QueueListener
from pathlib import Path
from typing import Any, Literal

from concurrent_log_handler import ConcurrentTimedRotatingFileHandler

LogFormat = Literal["text", "json"]
DAY_S = 24 * 3600
_BARE = re.compile(r"^[^\s\"=]*$")


class RetainingHandler(ConcurrentTimedRotatingFileHandler):
    """Rotated at midnight and past ``max_bytes`` (``<file>.<date>[.<n>].gz``); rotated files whose day
    is more than ``retention_days`` ago are deleted at each rotation (by age, not by count: a busy day
    may rotate many times)."""

    def __init__(self, path: Path, *, max_bytes: int, retention_days: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        # backupCount only has to be non-zero for getFilesToDelete to be asked
        super().__init__(str(path), when="midnight", backupCount=retention_days, maxBytes=max_bytes,
                         use_gzip=True, encoding="utf-8")
        self._rotated = re.compile(re.escape(path.name) + r"\.(\d{4}-\d{2}-\d{2})(?:\.\d+)?(?:\.gz)?$")

    def getFilesToDelete(self) -> list[str]:
        cutoff = dt.date.fromtimestamp(time.time() - self.retention_days * DAY_S)
        folder = Path(self.baseFilename).parent
        old = []
        for path in folder.iterdir():
            found = self._rotated.match(path.name)
            if found and dt.date.fromisoformat(found.group(1)) < cutoff:
                old.append(str(path))
        return old


def _text_value(value: Any) -> str:
    """Words as they are, text with spaces or quotes quoted, structures and None as compact JSON."""
    if value is None or isinstance(value, dict | list | tuple | bool):
        return json.dumps(value, separators=(",", ":"), default=str)
    text = str(value)
    return text if _BARE.match(text) else json.dumps(text)


def _text(fields: dict[str, Any]) -> str:
    return " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())


class LineFormatter(logging.Formatter):
    """``fields`` (the record's ``extra``) after the time: ``key=value …`` or one JSON object."""

    def __init__(self, style: LogFormat) -> None:
        super().__init__()
        self.style = style

    def format(self, record: logging.LogRecord) -> str:
        at = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        fields = {"time": at.replace("+00:00", "Z"), **getattr(record, "fields", {})}
        if self.style == "json":
            return json.dumps(fields, separators=(",", ":"), default=str)
        return _text(fields)


class LogFile:
    """One log file: :meth:`write` a line of fields; opened on the first line, :meth:`close`\\ d at the end."""

    def __init__(self, path: Path, style: LogFormat, *, max_bytes: int, retention_days: int) -> None:
        self.path, self.style = path, style
        self._options = {"max_bytes": max_bytes, "retention_days": retention_days}
        self._logger = logging.Logger(f"algo_mcp.file.{path.name}", logging.INFO)
        self._logger.propagate = False
        self._listener: QueueListener | None = None

    def write(self, **fields: Any) -> None:
        if self._listener is None:
            self._open()
        self._logger.info("", extra={"fields": fields})

    def _open(self) -> None:
        handler = RetainingHandler(self.path, **self._options)
        handler.setFormatter(LineFormatter(self.style))
        lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._logger.addHandler(QueueHandler(lines))
        self._listener = QueueListener(lines, handler)
        self._listener.start()

    def close(self) -> None:
        """Write what is queued and let go of the file."""
        if self._listener is None:
            return
        self._listener.stop()
        for handler in (*self._listener.handlers, *self._logger.handlers):
            handler.close()
            self._logger.removeHandler(handler)
        self._listener = None
