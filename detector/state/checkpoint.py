"""The framed value of a changelog record: named snapshot sections plus the input offset.

Layout (big-endian), no pickle: the sections are engine snapshots (orjson) that hold
attacker-controlled values and are parsed as JSON only::

    b"DCK1" | offset: int64 | count: uint32 | count x (name_len: uint16 | name (UTF-8)
                                                      | data_len: uint32 | data)

``offset`` is the next offset of the input partition the state reflects: every input
record below it is in the state, none at or above it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

MAGIC = b"DCK1"
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
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Checkpoint:
        """Parse :meth:`to_bytes` output; raises ``ValueError`` on anything else."""
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
