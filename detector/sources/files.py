"""File source: JSON lines, whole-document JSON (e.g. CloudTrail S3 delivery), ``.gz``.

Framing only. A file that parses as one JSON document is one record (normalizers unwrap
``Records[]`` and other envelopes); otherwise, when its first line is JSON, every
non-blank line is a record; otherwise the whole file is one record (one dead letter).
Decoding and validation happen later, so a bad line becomes a dead letter instead of
stopping the file. Unreadable, oversized or corrupt files are dead letters too.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from detector.decode import DecodeLimits, decode_json
from detector.errors import DecodeError
from detector.models import DeadLetter, Origin, RawRecord

#: A whole file (an S3 delivery of CloudTrail, say) may exceed the per-record limit.
DEFAULT_MAX_FILE_BYTES = 512 << 20
#: Names read when a directory is given.
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".log", ".json.gz", ".jsonl.gz", ".ndjson.gz")


class FileReadError(Exception):
    """A file could not be read or inflated; ``reason`` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def read_file(name: str, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The bytes of a path (or of stdin for ``-``), gunzipped when gzip-compressed.

    Inflation is bounded: a small ``.gz`` can expand without limit, so past
    ``max_file_bytes`` the file is refused with :class:`FileReadError`.
    """
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        raise FileReadError("unreadable", str(exc)) from None
    if data[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            inflated = inflater.decompress(data, max_file_bytes + 1)
        except zlib.error as exc:
            raise FileReadError("invalid_gzip", str(exc)) from None
        if not inflater.eof and not inflater.unconsumed_tail:
            raise FileReadError("invalid_gzip", "truncated gzip stream")
        data = inflated
    if len(data) > max_file_bytes:
        raise FileReadError("too_large", f"more than {max_file_bytes} bytes")
    return data


def split_records(data: bytes, name: str, max_depth: int = 64) -> Iterator[RawRecord]:
    """One whole-file record, or one record per line for JSON-lines input."""
    whole = RawRecord(data, Origin(path=name))
    if not data.strip():
        yield whole
        return
    try:
        decode_json(data, DecodeLimits(max_bytes=len(data), max_depth=max_depth))
    except DecodeError:
        lines = data.splitlines()
        first = next((line for line in lines if line.strip()), b"")
        try:
            decode_json(first, DecodeLimits(max_bytes=max(len(first), 1), max_depth=max_depth))
        except DecodeError:
            yield whole  # not JSON lines either: one dead letter for the file
            return
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield RawRecord(line, Origin(path=name, line=number))
        return
    yield whole


def expand(paths: Iterable[Path | str]) -> Iterator[str]:
    """File names of ``paths``: directories expanded recursively to log files, sorted."""
    for item in paths:
        path = Path(item)
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and file.name.endswith(LOG_SUFFIXES):
                    yield str(file)
        else:
            yield str(item)


def iter_records(
    paths: Iterable[Path | str], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
) -> Iterator[RawRecord | DeadLetter]:
    """Raw records of every file in ``paths`` (``-`` is stdin), or a dead letter per file
    that cannot be read."""
    for name in expand(paths):
        try:
            data = read_file(name, max_file_bytes)
        except FileReadError as exc:
            yield DeadLetter("read", exc.reason, exc.detail, Origin(path=name))
            continue
        yield from split_records(data, name)
