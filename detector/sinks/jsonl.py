"""Alerts as JSON lines in a local file: the embedded default, no services needed."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path

import orjson
import structlog

from detector.errors import SinkError
from detector.models import Alert
from detector.sinks.config import JsonLinesSinkConfig

log = structlog.get_logger(__name__)


class JsonLinesSink:
    """Appends :meth:`Alert.to_document` lines to a file, at most once per alert id.

    On first use the ids already in the file (``event.id`` of each line) are read, so a
    re-run over the same input appends nothing new. A torn last line from a crash is
    skipped when reading and closed off with a newline before appending. Implements
    :class:`detector.models.Sink`. One process per file: ids are not shared across writers.
    """

    def __init__(self, config: JsonLinesSinkConfig) -> None:
        self.path = config.path
        self._fsync = config.fsync
        self._ids: set[str] | None = None
        self._lock = asyncio.Lock()

    async def write(self, alerts: Sequence[Alert]) -> None:
        """Append the alerts whose ids are not in the file yet; durable on return."""
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, alerts)
            except OSError as exc:
                raise SinkError(f"cannot write alerts to {self.path}: {exc}") from exc

    async def close(self) -> None:
        """Nothing is held open between writes; idempotent."""

    @property
    def stored_ids(self) -> frozenset[str]:
        """Alert ids known to be in the file (after the first write)."""
        return frozenset(self._ids or ())

    def _write(self, alerts: Sequence[Alert]) -> None:
        if self._ids is None:
            self._ids = _existing_ids(self.path)
        lines: list[bytes] = []
        for alert in alerts:
            if alert.id in self._ids:
                continue
            self._ids.add(alert.id)
            lines.append(orjson.dumps(alert.to_document()) + b"\n")
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as fh:
            if fh.tell() > 0 and not _ends_with_newline(self.path):
                fh.write(b"\n")
            fh.writelines(lines)
            fh.flush()
            if self._fsync:
                os.fsync(fh.fileno())
        log.info("sink_jsonl_written", path=str(self.path), alerts=len(lines))


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _existing_ids(path: Path) -> set[str]:
    """``event.id`` of every parseable line of ``path`` (empty if it does not exist)."""
    ids: set[str] = set()
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return ids
    with fh:
        for line in fh:
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn line from an interrupted write
            event = doc.get("event") if isinstance(doc, dict) else None
            if isinstance(event, dict) and isinstance(event.get("id"), str):
                ids.add(event["id"])
    return ids
