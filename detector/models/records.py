"""Raw input records, before decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

#: How a record's bytes are framed: JSON, Avro (Confluent wire format or single-object
#: encoding), or ``auto`` (Avro told from JSON by its first bytes, 0x00 or 0xC3 0x01).
WireFormat = Literal["json", "avro", "auto"]
WIRE_FORMATS: tuple[WireFormat, ...] = get_args(WireFormat)


class Origin(NamedTuple):
    """Where a record came from: a Kafka position or a file and line.

    Immutable. A named tuple rather than a frozen dataclass, as
    :class:`~detector.models.events.Event`: one is built per source record and per
    routed match the correlate stage decodes, where a frozen dataclass's ``__init__``
    cost several times as much (``bench/bench_codec.py``).
    """

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    path: str | None = None
    line: int | None = None

    def describe(self) -> str:
        """A short human-readable location, e.g. ``cloudtrail/0@42`` or ``trail.json:7``."""
        if self.topic is not None:
            return f"{self.topic}/{self.partition}@{self.offset}"
        if self.path is not None:
            return f"{self.path}:{self.line}" if self.line is not None else self.path
        return "<unknown>"

    def as_dict(self) -> dict[str, str | int]:
        """The non-empty location fields, for dead-letter records and logs."""
        items = {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "path": self.path,
            "line": self.line,
        }
        return {k: v for k, v in items.items() if v is not None}


@dataclass(frozen=True, slots=True)
class RawRecord:
    """The bytes of one Kafka message or one line/file, with where they came from."""

    value: bytes
    origin: Origin
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None
