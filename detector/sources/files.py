"""File source: JSON lines, whole-document JSON (e.g. CloudTrail S3 delivery), ``.gz``.

Framing only, streamed: a file is read in chunks and its records are yielded as they
are found, so memory follows the configured limits, not the size of the file (a later
event-time merge of several files can pull from one stream per file).

- gzip input is inflated member after member (``cat a.gz b.gz``, as log shippers
  write), and the inflated total is capped;
- a UTF-8 byte-order mark at the start of the file is dropped;
- the framing is chosen by structure: a file that is one JSON document within the
  record limit is one record (normalizers unwrap ``Records[]`` and other envelopes); a
  file whose lines are JSON values on their own is JSON lines, every line a record, so
  a bad line (even the first) is one dead letter and the rest are read; anything else
  is one record for one dead letter;
- a larger document whose ``Records`` holds an array (CloudTrail S3 delivery of a busy
  account) is streamed by :mod:`detector.sources.records`: its elements are regrouped
  into ``{"Records": [...]}`` parts within the record limit, byte for byte, so they
  normalize as the small document would.

Decoding and validation happen later. Unreadable, oversized or corrupt input becomes a
dead letter naming the file (and line); what was read before the fault is kept.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import BinaryIO

from detector.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, DecodeLimits, decode_json
from detector.errors import DecodeError
from detector.models import DeadLetter, Origin, RawRecord
from detector.sources.records import stream_records

#: Inflated bytes read from one file at most; past it the rest of the file is refused.
DEFAULT_MAX_FILE_BYTES = 512 << 20
#: Names read when a directory is given.
LOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".log", ".json.gz", ".jsonl.gz", ".ndjson.gz")
#: Bytes read (and inflated) per step.
CHUNK_BYTES = 1 << 20
#: Lines sampled to tell JSON lines from a document spread over lines.
SAMPLE_LINES = 16

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


class FileReadError(Exception):
    """A file could not be read or inflated; ``reason`` is a dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True, slots=True)
class FileLimits:
    """Bounds of file reading.

    ``max_file_bytes`` caps the inflated bytes read from one file; ``max_record_bytes``
    caps one line, and one whole-file document (it is parsed to choose the framing);
    ``max_depth`` is the nesting limit of that parse.
    """

    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_record_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


class LogStream:
    """The inflated bytes of a path (or of stdin for ``-``), read incrementally.

    gzip input (recognised by its magic bytes, whatever the name) is inflated member
    after member; a leading UTF-8 byte-order mark is dropped. Reading more than
    ``max_bytes`` raises :class:`FileReadError` (``too_large``); corrupt gzip raises it
    with ``invalid_gzip`` and an unreadable file with ``unreadable``. Use as a context
    manager, or call :meth:`close`. ``on_read(file_bytes)`` is told the bytes read from
    the file so far (before inflating) after each read, for progress bars.
    """

    def __init__(
        self,
        name: str,
        max_bytes: int = DEFAULT_MAX_FILE_BYTES,
        on_read: Callable[[int], None] | None = None,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.read_bytes = 0
        #: Bytes read from the file (compressed, for gzip).
        self.file_bytes = 0
        self._on_read = on_read
        try:
            self._file: BinaryIO = sys.stdin.buffer if name == "-" else open(name, "rb")  # noqa: SIM115
        except OSError as exc:
            raise FileReadError("unreadable", str(exc)) from None
        self._chunks = self._inflated()
        self._buffer = b""
        self._pos = 0
        self._started = False

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (never stdin)."""
        if self._file is not sys.stdin.buffer:
            self._file.close()

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """Up to ``size`` inflated bytes; fewer only at the end of the stream."""
        # An offset into the buffer, not a slice of its rest: reading a varint byte by
        # byte (Avro) must not copy the buffered chunk each time.
        while len(self._buffer) - self._pos < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._buffer = self._buffer[self._pos :] + chunk
            self._pos = 0
        data = self._buffer[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end), left to be read."""
        data = self.read(size)
        self._pos -= len(data)
        return data

    def chunks(self) -> Iterator[bytes]:
        """The remaining inflated bytes, chunk by chunk."""
        if self._pos < len(self._buffer):
            yield self._buffer[self._pos :]
        self._buffer, self._pos = b"", 0
        yield from self._chunks

    def _raw(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._file.read(CHUNK_BYTES)
            except OSError as exc:
                raise FileReadError("unreadable", str(exc)) from None
            if not chunk:
                return
            self.file_bytes += len(chunk)
            if self._on_read is not None:
                self._on_read(self.file_bytes)
            yield chunk

    def _inflated(self) -> Iterator[bytes]:
        raw = self._raw()
        first = next(raw, b"")
        while 0 < len(first) < 2:  # a pipe may deliver a single byte first
            more = next(raw, b"")
            if not more:
                break
            first += more
        source = chain((first,) if first else (), raw)
        chunks = _gunzip(source) if first[:2] == _GZIP_MAGIC else source
        for inflated in chunks:
            chunk = inflated if self._started else inflated.removeprefix(_BOM)
            self._started = True
            self.read_bytes += len(chunk)
            if self.read_bytes > self.max_bytes:
                raise FileReadError(
                    "too_large",
                    f"more than {self.max_bytes} bytes (inflated); the rest is not read",
                )
            if chunk:
                yield chunk


def _gunzip(source: Iterator[bytes]) -> Iterator[bytes]:
    """Inflate every gzip member of ``source``, at most a chunk of output per step.

    Zero padding after the last member is accepted, as ``gzip`` does; other trailing
    bytes, a bad header or a truncated member are ``invalid_gzip``.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    fed = False
    for chunk in source:
        pending = chunk
        while pending:
            if not fed and not pending.strip(b"\0"):
                break  # padding between or after members
            fed = True
            try:
                out = inflater.decompress(pending, CHUNK_BYTES)
            except zlib.error as exc:
                raise FileReadError("invalid_gzip", str(exc)) from None
            if out:
                yield out
            if inflater.eof:
                pending = inflater.unused_data
                inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                fed = False
            else:
                pending = inflater.unconsumed_tail
    if fed:
        raise FileReadError("invalid_gzip", "truncated gzip stream")


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    value: bytes
    #: False when the line was longer than the limit; ``value`` is then its first bytes.
    whole: bool = True


def _lines(chunks: Iterable[bytes], limit: int) -> Iterator[_Line]:
    """Split on ``\\n``; a line longer than ``limit`` is not held: its first bytes are kept
    and the rest skipped up to the next newline."""
    number = 0
    carry = b""
    overlong = False
    for chunk in chunks:
        parts = chunk.split(b"\n")
        for part in parts[:-1]:
            number += 1
            if overlong:
                yield _Line(number, carry, whole=False)
                overlong = False
            else:
                line = carry + part
                yield (
                    _Line(number, line)
                    if len(line) <= limit
                    else _Line(number, line[:limit], whole=False)
                )
            carry = b""
        if not overlong:
            carry += parts[-1]
            if len(carry) > limit:
                carry = carry[:limit]
                overlong = True
    if overlong:
        yield _Line(number + 1, carry, whole=False)
    elif carry:
        yield _Line(number + 1, carry)


def _is_json_value(line: bytes, limits: FileLimits) -> bool:
    """True if ``line`` alone is a JSON object or array (a JSON-lines record)."""
    if line.lstrip()[:1] not in (b"{", b"["):
        return False
    try:
        decode_json(line, DecodeLimits(limits.max_record_bytes, limits.max_depth))
    except DecodeError as exc:
        return exc.reason == "too_deep"
    return True


def _looks_like_lines(head: list[_Line], limits: FileLimits) -> bool:
    """JSON lines when at least half of the first non-blank complete lines are JSON values
    on their own; a pretty-printed document has almost none."""
    sample = [ln.value for ln in head if ln.whole and ln.value.strip()][:SAMPLE_LINES]
    hits = sum(_is_json_value(line, limits) for line in sample)
    return hits > 0 and hits * 2 >= len(sample)


def _whole_document(text: bytes, limits: FileLimits) -> bool:
    """True if ``text`` is a single JSON document (too deep still counts: it is one)."""
    try:
        decode_json(text, DecodeLimits(max(len(text), 1), limits.max_depth))
    except DecodeError as exc:
        return exc.reason == "too_deep"
    return True


def read_records(
    name: str, limits: FileLimits | None = None, on_read: Callable[[int], None] | None = None
) -> Generator[RawRecord | DeadLetter, None, None]:
    """Raw records of one file (``-`` is stdin), yielded as they are read.

    Input that cannot be read, inflated or framed within ``limits`` gives a dead letter
    naming the file (and line); records read before a fault are yielded first.
    ``on_read`` follows the bytes read from the file (see :class:`LogStream`).
    """
    limits = limits or FileLimits()
    try:
        stream = LogStream(name, limits.max_file_bytes, on_read)
    except FileReadError as exc:
        yield DeadLetter("read", exc.reason, exc.detail, Origin(path=name))
        return
    with stream:
        yield from frame_records(stream, name, limits)


def frame_records(
    stream: LogStream, name: str, limits: FileLimits | None = None
) -> Iterator[RawRecord | DeadLetter]:
    """The records of an open stream named ``name``, framed as :func:`read_records` says."""
    try:
        yield from _frame(stream.chunks(), name, limits or FileLimits())
    except FileReadError as exc:
        yield DeadLetter("read", exc.reason, exc.detail, Origin(path=name))


def _frame(
    chunks: Iterable[bytes], name: str, limits: FileLimits
) -> Iterator[RawRecord | DeadLetter]:
    """Choose the framing from the file's head (at most one record limit of bytes), then
    stream the records; a read fault is raised after the complete lines before it."""
    limit = limits.max_record_bytes
    source = iter(chunks)
    # The first bytes (about one record limit) are held to tell a large ``Records``
    # document, streamed element by element, from everything else.
    kept: list[bytes] = []
    size = 0
    fault: FileReadError | None = None
    try:
        for chunk in source:
            kept.append(chunk)
            size += len(chunk)
            if size > limit + 1:
                streamed = stream_records(b"".join(kept), source, name, limit, limits.max_depth)
                if streamed is not None:
                    kept.clear()
                    yield from streamed
                    return
                break
    except FileReadError as exc:
        fault = exc
    lines = _lines(_replayed(kept, source, fault), limit)
    head: list[_Line] = []
    size = 0
    ended = True
    try:
        for line in lines:
            head.append(line)
            size += len(line.value) + 1
            if size > limit + 1 or not line.whole:
                ended = False
                break
    except FileReadError:
        if _looks_like_lines(head, limits):
            yield from _line_records(head, name, limit)
        raise
    if ended:
        text = b"\n".join(ln.value for ln in head)
        if not text.strip() or _whole_document(text, limits) or not _looks_like_lines(head, limits):
            yield RawRecord(text, Origin(path=name))
            return
    elif not _looks_like_lines(head, limits):
        yield DeadLetter(
            "read",
            "too_large",
            f"one JSON document (not JSON lines) larger than the {limit}-byte record limit",
            Origin(path=name),
        )
        return
    yield from _line_records(chain(head, lines), name, limit)


def _replayed(
    kept: list[bytes], source: Iterator[bytes], fault: FileReadError | None
) -> Iterator[bytes]:
    """The chunks already read, then the rest (or the fault that stopped the reading)."""
    while kept:
        yield kept.pop(0)  # not held once handed on
    if fault is not None:
        raise fault
    yield from source


def _line_records(
    lines: Iterable[_Line], name: str, limit: int
) -> Iterator[RawRecord | DeadLetter]:
    for line in lines:
        origin = Origin(path=name, line=line.number)
        if not line.whole:
            yield DeadLetter(
                "decode",
                "too_large",
                f"line longer than the {limit}-byte record limit; first bytes kept",
                origin,
                line.value,
            )
        elif line.value.strip():
            yield RawRecord(line.value, origin)


def split_records(
    data: bytes, name: str, limits: FileLimits | None = None
) -> Iterator[RawRecord | DeadLetter]:
    """The records framed out of bytes already in memory, as :func:`read_records` frames
    a file (the bytes are already inflated)."""
    yield from _frame((data.removeprefix(_BOM),), name, limits or FileLimits())


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
    paths: Iterable[Path | str],
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    limits: FileLimits | None = None,
) -> Iterator[RawRecord | DeadLetter]:
    """Raw records of every file in ``paths`` (``-`` is stdin), file after file, streamed;
    dead letters for what cannot be read."""
    limits = limits or FileLimits(max_file_bytes=max_file_bytes)
    for name in expand(paths):
        yield from read_records(name, limits)
