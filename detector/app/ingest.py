"""Ingest: raw record bytes to events or dead letters (decode, then normalize).

The Kafka runner, replay and the ``normalize`` command share this one path, so a
record is answered the same way everywhere: events, or dead letters naming the stage,
the reason and where the record came from. Only :class:`DecodeError` and
:class:`NormalizeError` are turned into dead letters; anything else is a bug.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml

from detector.decode import AvroDecoder, AvroSchema, DecodeLimits, SchemaStore, decode_json
from detector.errors import ConfigError, DecodeError, RecordError
from detector.models import WIRE_FORMATS, DeadLetter, Event, RawRecord
from detector.normalize import Normalizer


def load_schemas(directory: Path) -> SchemaStore:
    """Read ``<family>.v<N>.avsc`` files and ``registry.yaml`` (Confluent id -> name).

    Raise :class:`ConfigError` listing every unreadable or inconsistent file.
    """
    if not directory.is_dir():
        raise ConfigError(f"schema directory {directory} does not exist")
    problems: list[str] = []
    schemas: list[AvroSchema] = []
    for path in sorted(directory.glob("*.avsc")):
        family, _, version = path.name.removesuffix(".avsc").partition(".v")
        try:
            definition = orjson.loads(path.read_bytes())
            schemas.append(AvroSchema.from_definition(family, int(version), definition))
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
            problems.append(f"{path.name}: {exc}")
        except Exception as exc:  # fastavro's schema errors have no common base class
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
    ids: dict[int, str] = {}
    registry = directory / "registry.yaml"
    if registry.is_file():
        try:
            data = yaml.safe_load(registry.read_text()) or {}
            ids = {int(k): str(v) for k, v in (data.get("schemas") or {}).items()}
        except (OSError, ValueError, AttributeError, yaml.YAMLError) as exc:
            problems.append(f"registry.yaml: {exc}")
    if not problems:
        try:
            return SchemaStore(schemas, ids)
        except ValueError as exc:
            problems.append(f"registry.yaml: {exc}")
    raise ConfigError(f"schemas in {directory}: " + "; ".join(problems))


class Ingestor:
    """Decodes and normalizes raw records; pure and synchronous once built.

    ``source`` is a family or ``auto``; ``fmt`` is ``json``, ``avro`` or ``auto``.
    Avro needs ``schemas`` (see :func:`load_schemas`).
    """

    def __init__(
        self,
        *,
        source: str = "auto",
        fmt: str = "json",
        limits: DecodeLimits | None = None,
        schemas: SchemaStore | None = None,
    ) -> None:
        if fmt not in WIRE_FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; expected one of {', '.join(WIRE_FORMATS)}")
        if fmt != "json" and schemas is None:
            raise ConfigError(f"format {fmt!r} needs an Avro schema directory")
        try:
            self.normalizer = Normalizer(source)
            self.pending = Normalizer(source, pending=True)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.fmt = fmt
        self.limits = limits or DecodeLimits()
        self.avro = AvroDecoder(schemas, self.limits) if schemas is not None else None

    def decode(self, value: bytes) -> Any:
        """The decoded document of one record; raise :class:`DecodeError`."""
        if self.avro is not None and (
            self.fmt == "avro"
            or (self.fmt == "auto" and (value[:1] == b"\x00" or value[:2] == b"\xc3\x01"))
        ):
            return self.avro.decode(value)
        return decode_json(value, self.limits)

    def ingest(
        self, record: RawRecord, pending: bool = False
    ) -> tuple[list[Event], list[DeadLetter]]:
        """Events of one raw record and dead letters for what could not be processed.

        With ``pending``, an event's ECS document may be left to build on demand
        (:class:`~detector.normalize.Normalizer`): for the detection pipelines.
        """
        try:
            doc = self.decode(record.value)
        except DecodeError as exc:
            return [], [_dead(exc, record)]
        normalizer = self.pending if pending else self.normalizer
        events, errors = normalizer.normalize(doc, record.origin)
        if not errors:  # the common case, once per record: no comprehension to run
            return events, []
        return events, [_dead(e, record) for e in errors]

    def ingest_document(self, doc: Any, record: RawRecord) -> tuple[list[Event], list[DeadLetter]]:
        """Like :meth:`ingest` for an already decoded document (e.g. from an Avro container)."""
        events, errors = self.normalizer.normalize(doc, record.origin)
        return events, [_dead(e, record) for e in errors]


def _dead(error: RecordError, record: RawRecord) -> DeadLetter:
    return DeadLetter(
        error.stage, error.reason, error.detail, record.origin, record.value, error.count
    )


def ingest(
    record: RawRecord,
    *,
    source: str = "auto",
    fmt: str = "json",
    limits: DecodeLimits | None = None,
    schemas: SchemaStore | None = None,
) -> tuple[list[Event], list[DeadLetter]]:
    """One-shot :meth:`Ingestor.ingest`; build an :class:`Ingestor` once for a stream."""
    return Ingestor(source=source, fmt=fmt, limits=limits, schemas=schemas).ingest(record)
