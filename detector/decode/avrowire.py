"""Avro wire formats: Confluent framing and single-object encoding, through fastavro.

Schemas follow the convention documented in ``schemas/README.md``: a few typed
top-level fields named after native fields (``x-native`` renames one, e.g. to
``@timestamp``), plus one string field marked ``"x-rest": true`` that holds the
remaining native fields as a JSON object. Decoding rebuilds the native record, so the
normalizers see the same shape whatever the wire format.

Schemas hold only scalars and unions of scalars: a hostile Avro block count cannot
make the reader loop, and the nested remainder goes through the JSON size and depth
limits.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import fastavro
import orjson
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from detector.decode.jsonwire import decode_json
from detector.decode.limits import ContainerLimits, DecodeLimits
from detector.errors import DecodeError

#: First byte of the Confluent wire format, followed by a 4-byte big-endian schema id.
CONFLUENT_MAGIC = 0
#: Marker of Avro single-object encoding, followed by the 8-byte CRC-64-AVRO fingerprint.
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
#: Header of an Avro object container file.
CONTAINER_MAGIC = b"Obj\x01"

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "long": (int,),
    "int": (int,),
    "boolean": (bool,),
    "double": (float, int),
    "float": (float, int),
}
_DEFAULT_LIMITS = DecodeLimits()
_DEFAULT_CONTAINER = ContainerLimits()


@dataclass(frozen=True, slots=True)
class _Field:
    avro: str
    native: str
    types: tuple[type, ...]


@dataclass(frozen=True, slots=True)
class AvroSchema:
    """One versioned family schema (``<family>.v<N>``) with its native-field mapping."""

    family: str
    version: int
    definition: Mapping[str, Any]
    parsed: Any = field(repr=False)
    fingerprint: bytes
    fields: tuple[_Field, ...] = field(repr=False)
    rest_field: str | None

    @property
    def name(self) -> str:
        """The versioned name, e.g. ``cloudtrail.v2``."""
        return f"{self.family}.v{self.version}"

    @classmethod
    def from_definition(
        cls, family: str, version: int, definition: Mapping[str, Any]
    ) -> AvroSchema:
        """Build from a parsed ``.avsc`` object; ``ValueError`` if it breaks the convention."""
        parsed = parse_schema(dict(definition))
        canonical = to_parsing_canonical_form(parsed)
        fp = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
        fields: list[_Field] = []
        rest: str | None = None
        for spec in definition.get("fields", []):
            name = spec["name"]
            if spec.get("x-rest"):
                rest = name
                continue
            branches = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            types: tuple[type, ...] = ()
            for branch in branches:
                if branch == "null":
                    continue
                if not isinstance(branch, str) or branch not in _PY_TYPES:
                    raise ValueError(f"{family}.v{version}: field {name!r} is not a scalar")
                types += _PY_TYPES[branch]
            fields.append(_Field(name, spec.get("x-native", name), types))
        return cls(family, version, definition, parsed, fp, tuple(fields), rest)

    def to_avro(self, native: Mapping[str, Any]) -> dict[str, Any]:
        """Split a native record into this schema's typed fields and the JSON remainder."""
        out: dict[str, Any] = {}
        rest = dict(native)
        for f in self.fields:
            value = rest.get(f.native)
            if (
                value is not None
                and isinstance(value, f.types)
                and not (isinstance(value, bool) and bool not in f.types)
            ):
                out[f.avro] = value
                del rest[f.native]
            else:
                out[f.avro] = None
        if self.rest_field is not None:
            out[self.rest_field] = orjson.dumps(rest).decode()
        return out

    def to_native(
        self, record: Mapping[str, Any], limits: DecodeLimits = _DEFAULT_LIMITS
    ) -> dict[str, Any]:
        """Rebuild the native record from a decoded Avro record."""
        native: dict[str, Any] = {}
        if self.rest_field is not None:
            text = record.get(self.rest_field)
            if text:
                rest = decode_json(text.encode(), limits)
                if not isinstance(rest, dict):
                    raise DecodeError("invalid_avro", f"{self.rest_field} is not a JSON object")
                native = rest
        for f in self.fields:
            value = record.get(f.avro)
            if value is not None:
                native[f.native] = value
        return native


class SchemaStore:
    """Local schemas by Confluent id and by fingerprint; reads resolve to the newest version.

    ``schemas`` are all known versions; ``ids`` maps Confluent schema ids to versioned
    names (``cloudtrail.v1``). Building the store does no I/O: the app layer reads the
    ``schemas/`` directory and passes the parsed definitions in.
    """

    def __init__(self, schemas: list[AvroSchema], ids: Mapping[int, str]) -> None:
        by_name = {s.name: s for s in schemas}
        self._by_id: dict[int, AvroSchema] = {}
        for sid, name in ids.items():
            if name not in by_name:
                raise ValueError(f"schema id {sid} names unknown schema {name!r}")
            self._by_id[sid] = by_name[name]
        self._by_fp = {s.fingerprint: s for s in schemas}
        self._latest: dict[str, AvroSchema] = {}
        for s in schemas:
            cur = self._latest.get(s.family)
            if cur is None or s.version > cur.version:
                self._latest[s.family] = s
        self.schemas = tuple(schemas)

    def by_id(self, schema_id: int) -> AvroSchema | None:
        """The schema registered under a Confluent id, or ``None``."""
        return self._by_id.get(schema_id)

    def by_fingerprint(self, fp: bytes) -> AvroSchema | None:
        """The schema with this CRC-64-AVRO fingerprint (8 bytes as on the wire), or ``None``."""
        return self._by_fp.get(fp)

    def latest(self, family: str) -> AvroSchema:
        """The newest version of a family, used as reader schema."""
        return self._latest[family]

    def register(self, schema_id: int, schema: AvroSchema) -> None:
        """Add a Confluent id resolved elsewhere (the app layer asks a schema registry).

        ``schema`` is a local schema or a writer schema of a local family, whose newest
        local version stays the reader. ``ValueError`` if no local schema has its family.
        """
        if schema.family not in self._latest:
            raise ValueError(f"schema id {schema_id}: no local schema of family {schema.family!r}")
        self._by_id[schema_id] = schema

    def id_of(self, schema: AvroSchema) -> int:
        """The Confluent id of ``schema``; ``KeyError`` if it has none."""
        for sid, s in self._by_id.items():
            if s is schema:
                return sid
        raise KeyError(schema.name)


class AvroDecoder:
    """Decodes Confluent-framed or single-object Avro messages into native records."""

    def __init__(self, store: SchemaStore, limits: DecodeLimits = _DEFAULT_LIMITS) -> None:
        self.store = store
        self.limits = limits

    def decode(self, value: bytes) -> dict[str, Any]:
        """One message to its native record; raise :class:`DecodeError` on any bad input.

        Reasons: ``empty``, ``too_large``, ``unknown_framing``, ``truncated_avro``,
        ``unknown_schema_id``, ``unknown_schema_fingerprint``, ``invalid_avro``,
        ``invalid_utf8``, ``trailing_bytes`` (and the JSON reasons for the remainder).
        """
        size = len(value)
        if size == 0:
            raise DecodeError("empty", "zero-length record")
        if size > self.limits.max_bytes:
            raise DecodeError("too_large", f"{size} bytes > limit {self.limits.max_bytes}")
        if value[0] == CONFLUENT_MAGIC:
            if size < 5:
                raise DecodeError("truncated_avro", "Confluent header shorter than 5 bytes")
            schema_id = int.from_bytes(value[1:5], "big")
            writer = self.store.by_id(schema_id)
            if writer is None:
                raise DecodeError("unknown_schema_id", f"schema id {schema_id}")
            body = value[5:]
        elif value[:2] == SINGLE_OBJECT_MAGIC:
            if size < 10:
                raise DecodeError("truncated_avro", "single-object header shorter than 10 bytes")
            fp = bytes(value[2:10])
            writer = self.store.by_fingerprint(fp)
            if writer is None:
                raise DecodeError("unknown_schema_fingerprint", f"fingerprint {fp.hex()}")
            body = value[10:]
        else:
            raise DecodeError("unknown_framing", f"first bytes {bytes(value[:2]).hex()}")
        return self.decode_body(body, writer)

    def decode_body(self, body: bytes, writer: AvroSchema) -> dict[str, Any]:
        """Decode an unframed Avro body written with ``writer`` into the native record."""
        reader = self.store.latest(writer.family)
        buf = io.BytesIO(body)
        record = _read_record(buf, writer.parsed, reader.parsed, len(body))
        if buf.tell() != len(body):
            raise DecodeError("trailing_bytes", f"{len(body) - buf.tell()} bytes after the record")
        return reader.to_native(record, self.limits)


def _read_record(buf: io.BytesIO, writer: Any, reader: Any, size: int) -> dict[str, Any]:
    """One record of ``buf``; fastavro's assorted errors become :class:`DecodeError`."""
    try:
        record = fastavro.schemaless_reader(buf, writer, reader)
    except EOFError:
        raise DecodeError("truncated_avro", f"body ends early ({size} bytes)") from None
    except UnicodeDecodeError as exc:
        raise DecodeError("invalid_utf8", str(exc)) from None
    except Exception as exc:
        # fastavro signals corrupt input with assorted built-in exceptions
        # (ValueError, IndexError, struct.error, ...); all mean the same here.
        if "unpack requires" in str(exc) or "buffer" in str(exc):
            raise DecodeError("truncated_avro", str(exc)) from None
        raise DecodeError("invalid_avro", f"{type(exc).__name__}: {exc}") from None
    if not isinstance(record, dict):
        raise DecodeError("invalid_avro", "not a record")
    return record


class Readable(Protocol):
    """A byte source: ``read(size)`` returns at most ``size`` bytes, ``b""`` at the end."""

    def read(self, size: int, /) -> bytes: ...


def read_container(
    data: bytes | Readable,
    limits: DecodeLimits = _DEFAULT_LIMITS,
    container: ContainerLimits = _DEFAULT_CONTAINER,
) -> Iterator[dict[str, Any]]:
    """Native records of an Avro object container file written with a family schema.

    ``data`` is the file's bytes or a stream of them; blocks are read one at a time and
    records yielded one by one, so memory follows ``container.max_block_bytes``, not the
    file. The embedded writer schema carries the ``x-native``/``x-rest`` convention.
    Codecs: ``null`` and ``deflate``. Raise :class:`DecodeError` if the file or a record
    is unreadable or a block is over the limits (records before it are yielded first).
    """
    stream: Readable = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    if stream.read(4) != CONTAINER_MAGIC:
        raise DecodeError("invalid_avro", "not an Avro object container file")
    meta = _read_meta(stream)
    codec = meta.get("avro.codec", b"null")
    if codec not in (b"null", b"deflate"):
        raise DecodeError("unsupported_codec", f"Avro codec {codec.decode(errors='replace')!r}")
    try:
        definition = orjson.loads(meta["avro.schema"])
        schema = AvroSchema.from_definition("container", 1, definition)
    except Exception as exc:  # missing, not JSON, or not a schema fastavro accepts
        raise DecodeError("invalid_avro", f"writer schema: {type(exc).__name__}: {exc}") from None
    sync = _read_exactly(stream, 16)
    total = 0
    while True:
        first = stream.read(1)
        if not first:
            return
        count = _read_long(stream, first)
        size = _read_long(stream)
        if not 0 <= size <= container.max_block_bytes:
            raise DecodeError(
                "too_large", f"block of {size} bytes > limit {container.max_block_bytes}"
            )
        total += count
        if count < 0 or total > container.max_records:
            raise DecodeError(
                "too_large", f"{total} records > limit {container.max_records} per container"
            )
        block = _inflate(_read_exactly(stream, size), codec, container.max_block_bytes)
        if count > len(block):
            raise DecodeError(
                "invalid_avro", f"block declares {count} records in {len(block)} bytes"
            )
        if _read_exactly(stream, 16) != sync:
            raise DecodeError("invalid_avro", "block sync marker does not match the header")
        buf = io.BytesIO(block)
        for _ in range(count):
            record = _read_record(buf, schema.parsed, None, len(block))
            yield schema.to_native(record, limits)
        if buf.tell() != len(block):
            raise DecodeError("invalid_avro", f"{len(block) - buf.tell()} bytes left in a block")


#: Bytes of container metadata read at most (schema and codec).
_MAX_META_BYTES = 1 << 20


def _read_meta(stream: Readable) -> dict[str, bytes]:
    """The header's ``map<bytes>`` of metadata."""
    meta: dict[str, bytes] = {}
    budget = _MAX_META_BYTES
    while count := _read_long(stream):
        if count < 0:  # a negative count is followed by the block's byte size
            count = -count
            _read_long(stream)
        for _ in range(count):
            key = _read_bytes(stream, budget)
            budget -= len(key)
            value = _read_bytes(stream, budget)
            budget -= len(value)
            meta[key.decode("utf-8", "replace")] = value
    return meta


def _read_bytes(stream: Readable, budget: int) -> bytes:
    size = _read_long(stream)
    if not 0 <= size <= budget:
        raise DecodeError("too_large", f"container metadata over {_MAX_META_BYTES} bytes")
    return _read_exactly(stream, size)


def _read_exactly(stream: Readable, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise DecodeError("truncated_avro", "container ends early")
    return data


def _read_long(stream: Readable, first: bytes = b"") -> int:
    """An Avro ``long``: zig-zag, base-128 varint of at most 10 bytes."""
    value = shift = 0
    byte = first or _read_exactly(stream, 1)
    while True:
        b = byte[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7
        if shift > 63:
            raise DecodeError("invalid_avro", "varint longer than 10 bytes")
        byte = _read_exactly(stream, 1)


def _inflate(data: bytes, codec: bytes, limit: int) -> bytes:
    """A block's bytes, inflated for ``deflate`` without ever holding more than ``limit``."""
    if codec == b"null":
        return data
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise DecodeError("invalid_avro", f"deflate block: {exc}") from None
    if len(out) > limit:
        raise DecodeError("too_large", f"block inflates past the limit of {limit} bytes")
    if not inflater.eof:
        raise DecodeError("truncated_avro", "deflate block ends early")
    return out


def encode_confluent(native: Mapping[str, Any], schema: AvroSchema, schema_id: int) -> bytes:
    """Encode a native record in the Confluent wire format (for producers, tests, benches)."""
    buf = io.BytesIO()
    buf.write(bytes([CONFLUENT_MAGIC]))
    buf.write(schema_id.to_bytes(4, "big"))
    fastavro.schemaless_writer(buf, schema.parsed, schema.to_avro(native))
    return buf.getvalue()


def encode_single_object(native: Mapping[str, Any], schema: AvroSchema) -> bytes:
    """Encode a native record with Avro single-object encoding."""
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MAGIC)
    buf.write(schema.fingerprint)
    fastavro.schemaless_writer(buf, schema.parsed, schema.to_avro(native))
    return buf.getvalue()
