"""Limits every decoder enforces before a record reaches the normalizers."""

from __future__ import annotations

from dataclasses import dataclass

#: Default maximum size of one encoded record (1 MiB).
DEFAULT_MAX_BYTES = 1 << 20
#: Default maximum nesting depth of objects and arrays.
DEFAULT_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    """Size and nesting bounds; a record beyond either is a dead letter, not a crash.

    ``max_bytes`` bounds the encoded size of one record and ``max_depth`` the number
    of nested objects/arrays (a top-level object is depth 1).
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


#: Default maximum inflated size of one Avro container block (16 MiB).
DEFAULT_MAX_BLOCK_BYTES = 16 << 20
#: Default maximum number of records read from one Avro container file.
DEFAULT_MAX_CONTAINER_RECORDS = 10_000_000


@dataclass(frozen=True, slots=True)
class ContainerLimits:
    """Bounds of an Avro object container file, checked before anything is materialised.

    ``max_block_bytes`` caps one block, compressed and inflated; ``max_records`` the
    records of the file. A block may not declare more records than it has bytes.
    """

    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES
    max_records: int = DEFAULT_MAX_CONTAINER_RECORDS
