"""Streaming of a large ``{"Records": [...]}`` document (CloudTrail S3 delivery).

A busy account's delivery file is often several MB, more than one record may be. Rather
than refuse it whole, its ``Records`` array is scanned byte by byte (strings, escapes and
nesting tracked, nothing parsed whole) and its elements are regrouped, with their exact
bytes, into ``{"Records": [...]}`` parts each within the record limit. Every part is one
record that normalizes exactly as the small document would (same records, same envelope,
same event ids); bad records of a part are summarised by the normalizer as for any
envelope, so dead letters stay bounded.

Memory follows the record limit: one element being read and one part being filled.
An element over the limit is one ``too_large`` dead letter naming its index (first bytes
kept); elements that are not JSON are summarised in one dead letter per file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from detector.decode import DecodeLimits, decode_json
from detector.errors import DecodeError
from detector.models import DeadLetter, Origin, RawRecord

_OPEN = b'{"Records":['
_CLOSE = b"]}"
_WHITESPACE = b" \t\n\r"
#: Outside strings only these bytes change the structure.
_STRUCTURE = re.compile(rb'["\[\]{},]')
#: Inside a string only these do.
_STRING = re.compile(rb'["\\]')
_QUOTE, _BACKSLASH, _COMMA = ord('"'), ord("\\"), ord(",")
_OPENERS = frozenset(b"{[")
_BRACKET = ord("[")
#: Keys longer than this cannot be ``Records``; a longer key is not held.
_KEY_BYTES = 16


class _Scanner:
    """Finds the elements of the top-level ``Records`` array in a stream of chunks.

    ``feed`` returns the slots between the array's separators, each as
    ``(bytes, whole)``; ``whole`` is False when the slot outgrew ``limit`` (its first
    ``limit`` bytes are then kept, the rest skipped).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.depth = 0
        self.in_string = False
        self.escaped = False
        self.key: bytearray | None = None  # the top-level string being read
        self.last_key = b""
        self.entered = False  # the Records array was opened
        self.inside = False  # currently inside it
        self.slot = bytearray()
        self.overlong = False
        self.trailing = False  # bytes other than whitespace after the document
        self.closed = False  # the document's last brace was read

    def _keep(self, data: bytes | memoryview) -> None:
        if self.overlong:
            return
        self.slot += data
        if len(self.slot) > self.limit:
            del self.slot[self.limit :]
            self.overlong = True

    def _take(self) -> tuple[bytes, bool]:
        slot = (bytes(self.slot).strip(_WHITESPACE), not self.overlong)
        self.slot = bytearray()
        self.overlong = False
        return slot

    def feed(self, chunk: bytes) -> list[tuple[bytes, bool]]:
        out: list[tuple[bytes, bool]] = []
        view = memoryview(chunk)
        n = len(chunk)
        i = 0
        if self.closed:
            self.trailing = self.trailing or bool(chunk.strip(_WHITESPACE))
            return out
        start = 0  # first byte of this chunk in the current slot or key
        if self.escaped and n:
            self.escaped = False
            i = 1  # the byte escaped at the end of the previous chunk
        while i < n:
            if self.in_string:
                m = _STRING.search(chunk, i)
                if m is None:
                    break
                j = m.start()
                if chunk[j] == _BACKSLASH:
                    if j + 1 >= n:
                        self.escaped = True
                        i = n
                        break
                    i = j + 2
                    continue
                self.in_string = False
                i = j + 1
                if self.key is not None:
                    self.key += view[start:j][: _KEY_BYTES + 1]
                    self.last_key = bytes(self.key)
                    self.key = None
                continue
            m = _STRUCTURE.search(chunk, i)
            if m is None:
                break
            j = m.start()
            c = chunk[j]
            i = j + 1
            if c == _QUOTE:
                self.in_string = True
                if self.depth == 1:
                    self.key = bytearray()
                    start = i
            elif c in _OPENERS:
                self.depth += 1
                if (
                    self.depth == 2
                    and c == ord("[")
                    and self.last_key == b"Records"
                    and not self.entered
                ):
                    # Only the first ``Records`` array is read (a repeated key is not).
                    self.inside = not self.entered
                    self.entered = True
                    start = i
            elif c == _COMMA:
                if self.inside and self.depth == 2:
                    self._keep(view[start:j])
                    out.append(self._take())
                    start = i
            else:  # a closing bracket
                if self.inside and self.depth == 2:
                    self._keep(view[start:j])
                    out.append(self._take())
                    self.inside = False
                self.depth -= 1
                if self.depth <= 0:
                    self.closed = True
                    self.trailing = self.depth < 0 or bool(chunk[i:].strip(_WHITESPACE))
                    return out
        if self.inside:
            self._keep(view[start:])
        elif self.key is not None and len(self.key) <= _KEY_BYTES:
            self.key += view[start:][: _KEY_BYTES + 1]
        return out


def _is_large_records(head: bytes, limit: int) -> bool:
    """True if ``head`` (more than ``limit`` bytes) starts a JSON object whose ``Records``
    array opens in it and which does not end in it: a document over the limit, not
    JSON lines of small delivery documents."""
    if head.lstrip(_WHITESPACE)[:1] != b"{":
        return False
    scanner = _Scanner(limit)
    scanner.feed(head[: limit + 1])
    return scanner.entered and not scanner.closed


def stream_records(
    head: bytes, source: Iterator[bytes], name: str, limit: int, max_depth: int
) -> Iterator[RawRecord | DeadLetter] | None:
    """The records of a ``{"Records": [...]}`` document larger than ``limit``, streamed
    from ``head`` (its first bytes, over the limit) and ``source`` (the rest); ``None`` if
    ``head`` does not start such a document."""
    if not _is_large_records(head, limit):
        return None
    return _parts(head, source, name, limit, max_depth)


class _Part:
    """Elements gathered into one ``{"Records": [...]}`` record within the limit."""

    def __init__(self, limit: int) -> None:
        self.room = limit - len(_OPEN) - len(_CLOSE)
        self.elements: list[bytes] = []
        self.size = 0

    def fits(self, element: bytes) -> bool:
        return self.size + len(element) + (1 if self.elements else 0) <= self.room

    def add(self, element: bytes) -> None:
        self.size += len(element) + (1 if self.elements else 0)
        self.elements.append(element)

    def record(self, name: str) -> RawRecord:
        value = _OPEN + b",".join(self.elements) + _CLOSE
        self.elements, self.size = [], 0
        return RawRecord(value, Origin(path=name))


class _Invalid:
    """Elements that are not JSON, summarised as one dead letter per file."""

    def __init__(self) -> None:
        self.first: tuple[int, DecodeError, bytes] | None = None
        self.reasons: dict[str, int] = {}

    def add(self, index: int, exc: DecodeError, value: bytes) -> None:
        if self.first is None:
            self.first = (index, exc, value)
        self.reasons[exc.reason] = self.reasons.get(exc.reason, 0) + 1

    def letter(self, name: str, total: int) -> DeadLetter | None:
        if self.first is None:
            return None
        index, exc, value = self.first
        count = sum(self.reasons.values())
        reasons = ", ".join(f"{reason} x{n}" for reason, n in self.reasons.items())
        detail = (
            f"{count} of {total} records bad ({reasons}); first: Records[{index}]: {exc.detail}"
        )
        return DeadLetter("decode", exc.reason, detail, Origin(path=name), value, count)


def _parts(
    head: bytes, source: Iterator[bytes], name: str, limit: int, max_depth: int
) -> Iterator[RawRecord | DeadLetter]:
    part = _Part(limit)
    # An element must fit in a part with its envelope around it.
    scanner = _Scanner(part.room)
    invalid = _Invalid()
    # The envelope adds two levels of nesting to each element.
    element_limits = DecodeLimits(limit, max(max_depth - 2, 1))
    index = 0
    origin = Origin(path=name)
    try:
        for chunk in _prepend(head, source):
            for value, whole in scanner.feed(chunk):
                at = index
                index += 1
                if not whole:
                    yield DeadLetter(
                        "decode",
                        "too_large",
                        f"Records[{at}] larger than the {limit}-byte record limit"
                        " (with its envelope); first bytes kept",
                        origin,
                        value,
                    )
                elif value or scanner.inside or at > 0:
                    try:
                        decode_json(value, element_limits)
                    except DecodeError as exc:
                        invalid.add(at, exc, value)
                        continue
                    if part.elements and not part.fits(value):
                        yield part.record(name)
                    part.add(value)
                else:
                    index = 0  # ``[]``: no element at all
            if scanner.trailing:
                break
    except Exception:
        # A read fault propagates after what was read before it.
        yield from _flush(part, invalid, name, index, empty=False)
        raise
    yield from _flush(part, invalid, name, index, empty=index == 0 and scanner.closed)
    if not scanner.closed:
        where = f"inside Records[{index}]" if scanner.inside else "before its end"
        yield DeadLetter("decode", "invalid_json", f"the document ends {where}", origin)
    elif scanner.trailing:
        yield DeadLetter(
            "decode", "invalid_json", "data after the end of the document (not read)", origin
        )


def _flush(
    part: _Part, invalid: _Invalid, name: str, total: int, *, empty: bool
) -> Iterator[RawRecord | DeadLetter]:
    """The last part (an empty one for ``"Records": []``, which the normalizer answers),
    then the summary of elements that were not JSON."""
    if part.elements or empty:
        yield part.record(name)
    letter = invalid.letter(name, total)
    if letter is not None:
        yield letter


def _prepend(head: bytes, source: Iterator[bytes]) -> Iterator[bytes]:
    yield head
    yield from source
