"""Values of the state topic: the per-batch meta record, and the whole-state checkpoint
of earlier versions (still read, so an upgrade restores it).

The meta record (:func:`encode_meta`) is ``b"DCM1" | orjson(document)``; the document
holds ``offset``, the next input offset the partition's state reflects, and what is not
kept per key (duplicate filter, source progress, held offsets, engine headers).

The whole-state checkpoint (:class:`Checkpoint`, written by versions before per-key
changelogs) is a frame of named snapshot sections plus the input offset.

Layout (big-endian), no pickle: the sections are engine snapshots (orjson) that hold
attacker-controlled values and are parsed as JSON only::

    b"DCK1" | offset: int64 | count: uint32 | count x (name_len: uint16 | name (UTF-8)
                                                      | data_len: uint32 | data)

``offset`` is the next offset of the input partition the state reflects: every input
record below it is in the state, none at or above it.

:meth:`Checkpoint.to_bytes` writes that frame compressed: ``b"DCKZ" | zlib(frame)`` at
level 1, fast enough to run after every batch (the producer level 9 gzip was not);
:meth:`Checkpoint.from_bytes` reads both.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

META_MAGIC = b"DCM1"
MAGIC = b"DCK1"
COMPRESSED = b"DCKZ"
#: Largest frame a compressed checkpoint may expand to (a corrupt record cannot explode).
MAX_FRAME_BYTES = 1 << 30
_HEAD = struct.Struct(">qI")
_NAME = struct.Struct(">H")
_DATA = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """State of one input partition: ``sections`` by name, valid up to ``offset``."""

    offset: int
    sections: Mapping[str, bytes] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The framed bytes of this checkpoint."""
        parts = [MAGIC, _HEAD.pack(self.offset, len(self.sections))]
        for name, data in self.sections.items():
            encoded = name.encode()
            parts += [_NAME.pack(len(encoded)), encoded, _DATA.pack(len(data)), data]
        return COMPRESSED + zlib.compress(b"".join(parts), 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Parse :meth:`to_bytes` output; raises ``ValueError`` on anything else."""
        if data[:4] == COMPRESSED:
            inflate = zlib.decompressobj()
            try:
                data = inflate.decompress(data[4:], MAX_FRAME_BYTES)
            except zlib.error as exc:
                raise ValueError(f"corrupt compressed checkpoint: {exc}") from exc
            if inflate.unconsumed_tail:
                raise ValueError("compressed checkpoint expands past the frame limit")
            if not inflate.eof or inflate.unused_data:
                raise ValueError("truncated compressed checkpoint or bytes after it")
        view = memoryview(data)
        if bytes(view[:4]) != MAGIC:
            raise ValueError("not a detector checkpoint (bad magic)")
        try:
            offset, count = _HEAD.unpack_from(view, 4)
            pos = 4 + _HEAD.size
            sections: dict[str, bytes] = {}
            for _ in range(count):
                (name_len,) = _NAME.unpack_from(view, pos)
                pos += _NAME.size
                name = bytes(view[pos : pos + name_len]).decode()
                pos += name_len
                (data_len,) = _DATA.unpack_from(view, pos)
                pos += _DATA.size
                if pos + data_len > len(view):
                    raise ValueError("section runs past the end")
                sections[name] = bytes(view[pos : pos + data_len])
                pos += data_len
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"truncated or corrupt checkpoint: {exc}") from exc
        if pos != len(view):
            raise ValueError("trailing bytes after the last section")
        if offset < 0:
            raise ValueError("negative offset")
        return cls(offset=offset, sections=sections)


def encode_meta(offset: int, document: Mapping[str, Any]) -> bytes:
    """The value of a partition's meta record: ``document`` plus the input ``offset``."""
    return META_MAGIC + orjson.dumps({**document, "offset": offset})


def is_checkpoint(data: bytes) -> bool:
    """Whether ``data`` is a whole-state checkpoint of an earlier version."""
    return data[:4] in (MAGIC, COMPRESSED)


def decode_meta(data: bytes) -> tuple[int, dict[str, Any]]:
    """``(offset, document)`` of a meta record; ``ValueError`` on anything else."""
    if data[:4] != META_MAGIC:
        raise ValueError("not a detector meta record (bad magic)")
    try:
        document = orjson.loads(data[4:])
        offset = int(document["offset"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid meta record: {exc!r}") from exc
    if not isinstance(document, dict) or offset < 0:
        raise ValueError("invalid meta record: not a document with an offset >= 0")
    return offset, document


def stored_offset(data: bytes) -> int:
    """The input offset a meta record or an older whole-state checkpoint reflects."""
    return Checkpoint.from_bytes(data).offset if is_checkpoint(data) else decode_meta(data)[0]
