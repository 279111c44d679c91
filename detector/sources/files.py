"""File source: JSON-lines, whole-document JSON (e.g. CloudTrail S3 delivery) and ``.gz``.

Framing only: a file whose first non-blank byte is ``{`` or ``[`` and which parses as one
JSON document is one record (normalizers unwrap ``Records[]`` envelopes); otherwise each
non-blank line is one record. Decoding and validation happen later, so a bad line becomes
a dead letter instead of stopping the file.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from detector.models import Origin, RawRecord

#: Whole-document files larger than this are read line by line instead.
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024


def read_bytes(path: Path) -> bytes:
    """The file's bytes, transparently gunzipped when it ends in ``.gz``; ``-`` is stdin."""
    if str(path) == "-":
        return sys.stdin.buffer.read()
    data = path.read_bytes()
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def records_from_bytes(data: bytes, name: str) -> Iterator[RawRecord]:
    """Split one file's bytes into raw records (see module docstring)."""
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"[") and (b"\n{" not in stripped or _is_single_document(stripped)):
        yield RawRecord(value=data, origin=Origin(path=name, line=1))
        return
    for number, line in enumerate(data.splitlines(), start=1):
        if line.strip():
            yield RawRecord(value=line, origin=Origin(path=name, line=number))


def _is_single_document(data: bytes) -> bool:
    """True when ``data`` is one pretty-printed JSON document rather than JSON lines."""
    if len(data) > MAX_DOCUMENT_BYTES:
        return False
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def iter_records(paths: Iterable[Path]) -> Iterator[RawRecord]:
    """Raw records of every file in ``paths``, directories expanded recursively (sorted)."""
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and _is_log_file(p))
        else:
            files = [path]
        for file in files:
            yield from records_from_bytes(read_bytes(file), str(file))


def _is_log_file(path: Path) -> bool:
    return path.name.endswith((".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".log"))
