"""Avro decoding: Confluent framing, single-object encoding, schema store, bad input."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

from detector.app.ingest import load_schemas
from detector.decode import (
    AvroDecoder,
    AvroSchema,
    DecodeLimits,
    SchemaStore,
    encode_confluent,
    encode_single_object,
    read_container,
)
from detector.errors import ConfigError, DecodeError

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
RECORDS = ROOT / "tests" / "fixtures" / "records"
SAMPLE = {
    "cloudtrail": "sts_assumerolewithwebidentity_github",
    "registry": "harbor_pull_tag",
    "ci": "github_git_clone_pat",
    "vault": "kv_read_response",
}


@pytest.fixture(scope="module")
def store() -> SchemaStore:
    """The repository's schema directory."""
    return load_schemas(SCHEMAS)


def _record(family: str) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((RECORDS / family / f"{SAMPLE[family]}.json").read_bytes())
    return data


def _crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as the Avro specification writes it, independent of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("family", sorted(SAMPLE))
def test_confluent_round_trip_every_version(store: SchemaStore, family: str) -> None:
    """Every registered schema id decodes its own messages back to the native record."""
    record = _record(family)
    decoder = AvroDecoder(store)
    ids = [sid for sid in range(1, 20) if (s := store.by_id(sid)) and s.family == family]
    assert ids
    for sid in ids:
        schema = store.by_id(sid)
        assert schema is not None
        assert decoder.decode(encode_confluent(record, schema, sid)) == record


@pytest.mark.parametrize("family", sorted(SAMPLE))
def test_single_object_round_trip(store: SchemaStore, family: str) -> None:
    """Single-object messages resolve by fingerprint and decode to the native record."""
    record = _record(family)
    schema = store.latest(family)
    message = encode_single_object(record, schema)
    assert message[:2] == b"\xc3\x01"
    assert AvroDecoder(store).decode(message) == record


def test_fingerprint_is_little_endian_crc64_of_canonical_form(store: SchemaStore) -> None:
    """The 8 header bytes are the spec's CRC-64-AVRO of the canonical form, little-endian."""
    schema = store.latest("cloudtrail")
    canonical = fastavro.schema.to_parsing_canonical_form(schema.parsed).encode()
    assert schema.fingerprint == _crc64_avro(canonical).to_bytes(8, "little")


def test_typed_fields_are_typed_and_the_rest_is_json(store: SchemaStore) -> None:
    """Scalars travel in typed fields; nested values travel in the JSON ``rest`` field."""
    schema = store.latest("cloudtrail")
    avro = schema.to_avro(_record("cloudtrail"))
    assert avro["eventName"] == "AssumeRoleWithWebIdentity"
    rest = orjson.loads(avro["rest"])
    assert "eventName" not in rest
    assert rest["userIdentity"]["type"] == "WebIdentityUser"


def test_mistyped_scalar_goes_to_rest(store: SchemaStore) -> None:
    """A native value that does not fit its typed field still round-trips, via ``rest``."""
    record = dict(_record("cloudtrail"), eventName={"odd": True}, readOnly="yes")
    schema = store.latest("cloudtrail")
    sid = store.id_of(schema)
    assert AvroDecoder(store).decode(encode_confluent(record, schema, sid)) == record


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "empty"),
        (b"\x00\x00\x00", "truncated_avro"),
        (b"\x00\x00\x00\x03\xe7\x00", "unknown_schema_id"),
        (b"\xc3\x01\x00\x00", "truncated_avro"),
        (b"\xc3\x01" + b"\x42" * 8 + b"\x00", "unknown_schema_fingerprint"),
        (b"{}", "unknown_framing"),
    ],
)
def test_bad_framing(store: SchemaStore, message: bytes, reason: str) -> None:
    """Headers that are short, unknown or foreign are rejected with a reason code."""
    with pytest.raises(DecodeError) as info:
        AvroDecoder(store).decode(message)
    assert info.value.reason == reason


def test_every_truncation_is_a_decode_error(store: SchemaStore) -> None:
    """Cutting a valid message anywhere gives a DecodeError, never another exception."""
    schema = store.by_id(1)
    assert schema is not None
    message = encode_confluent(_record("cloudtrail"), schema, 1)
    decoder = AvroDecoder(store)
    reasons = set()
    for cut in range(len(message)):
        with pytest.raises(DecodeError) as info:
            decoder.decode(message[:cut])
        reasons.add(info.value.reason)
    assert "truncated_avro" in reasons


def test_trailing_bytes_are_rejected(store: SchemaStore) -> None:
    """Bytes after the record mean a framing mix-up: ``trailing_bytes``."""
    schema = store.by_id(6)
    assert schema is not None
    message = encode_confluent(_record("vault"), schema, 6) + b"\x00"
    with pytest.raises(DecodeError) as info:
        AvroDecoder(store).decode(message)
    assert info.value.reason == "trailing_bytes"


def test_size_limit_applies_to_avro(store: SchemaStore) -> None:
    """The per-record size limit holds for Avro messages too."""
    schema = store.by_id(6)
    assert schema is not None
    message = encode_confluent(_record("vault"), schema, 6)
    with pytest.raises(DecodeError) as info:
        AvroDecoder(store, DecodeLimits(max_bytes=len(message) - 1)).decode(message)
    assert info.value.reason == "too_large"


def test_depth_limit_applies_to_the_json_rest(store: SchemaStore) -> None:
    """Deep nesting smuggled in the ``rest`` payload is still ``too_deep``."""
    schema = store.by_id(6)
    assert schema is not None
    deep: Any = 1
    for _ in range(70):
        deep = [deep]
    message = encode_confluent(dict(_record("vault"), extra=deep), schema, 6)
    with pytest.raises(DecodeError) as info:
        AvroDecoder(store).decode(message)
    assert info.value.reason == "too_deep"


def test_invalid_utf8_string_in_avro(store: SchemaStore) -> None:
    """An Avro string holding invalid UTF-8 is ``invalid_utf8``."""
    schema = store.by_id(6)
    assert schema is not None
    # vault.v1: type, time, error are ["null","string"] unions, then rest: string.
    body = b"\x02\x04\xff\xfe" + b"\x00\x00" + b"\x04{}"
    with pytest.raises(DecodeError) as info:
        AvroDecoder(store).decode(b"\x00\x00\x00\x00\x06" + body)
    assert info.value.reason == "invalid_utf8"


def test_object_container_file(store: SchemaStore) -> None:
    """An Avro container written with a family schema yields the native records."""
    schema = store.latest("ci")
    records = [_record("ci"), dict(_record("ci"), actor="someone-else")]
    buf = io.BytesIO()
    fastavro.writer(buf, schema.parsed, [schema.to_avro(r) for r in records])
    assert list(read_container(buf.getvalue())) == records
    with pytest.raises(DecodeError):
        list(read_container(buf.getvalue()[:-7]))


def test_store_rejects_ids_for_unknown_schemas() -> None:
    """An id map naming a schema that is not there is a configuration error."""
    definition = orjson.loads((SCHEMAS / "vault.v1.avsc").read_bytes())
    schema = AvroSchema.from_definition("vault", 1, definition)
    with pytest.raises(ValueError, match="unknown schema"):
        SchemaStore([schema], {1: "vault.v9"})


def test_load_schemas_reports_broken_files(tmp_path: Path) -> None:
    """A broken .avsc is reported as ConfigError naming the file."""
    (tmp_path / "x.v1.avsc").write_text("{not json")
    with pytest.raises(ConfigError, match=r"x\.v1\.avsc"):
        load_schemas(tmp_path)


def test_schemas_hold_only_scalars() -> None:
    """The convention forbids nested Avro types (see schemas/README.md)."""
    definition = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "m", "type": {"type": "map", "values": "string"}}],
    }
    with pytest.raises(ValueError, match="not a scalar"):
        AvroSchema.from_definition("x", 1, definition)
