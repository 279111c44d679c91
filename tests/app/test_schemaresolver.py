"""Schema ids of a batch resolved through a (loopback) registry into the local families."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro
from registry_support import FakeRegistry

from detector.app.ingest import Ingestor, load_schemas
from detector.app.schemaresolver import SchemaResolver
from detector.decode import encode_confluent
from detector.models import Origin, RawRecord
from detector.sources.schemaregistry import SchemaRegistryClient, SchemaRegistryConfig

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _record(topic: str, value: bytes) -> RawRecord:
    return RawRecord(value=value, origin=Origin(topic=topic, partition=0, offset=0))


def _framed(schema_id: int) -> bytes:
    return b"\x00" + schema_id.to_bytes(4, "big") + b"\x00"


async def test_registry_answers_become_local_writer_schemas() -> None:
    """A registered copy of a local version maps to that version; an evolved schema of a
    local family becomes a writer read by the newest local version; a foreign record
    name, an unregistered id and records of JSON topics stay unknown."""
    store = load_schemas(SCHEMAS)
    v1 = next(s for s in store.schemas if s.name == "cloudtrail.v1")
    evolved: dict[str, Any] = {
        **v1.definition,
        "fields": [f for f in v1.definition["fields"] if f["name"] != "awsRegion"],
    }
    foreign = {"type": "record", "name": "Thing", "namespace": "other", "fields": []}
    avro = Ingestor(source="cloudtrail", fmt="avro", schemas=store)
    with FakeRegistry({1001: dict(v1.definition), 1002: evolved, 1003: foreign}).running() as reg:
        client = SchemaRegistryClient(SchemaRegistryConfig.model_validate({"url": reg.url}))
        resolver = SchemaResolver.for_ingestors(client, {"ct": avro, "json": Ingestor()})
        try:
            await resolver.resolve(
                [_record("ct", _framed(i)) for i in (1001, 1002, 1003, 1004)]
                + [_record("json", _framed(1005)), _record("ct", b'{"a": 1}')]
            )
        finally:
            await client.close()
    assert store.by_id(1001) is v1
    writer = store.by_id(1002)
    assert writer is not None and writer.family == "cloudtrail" and writer not in store.schemas
    assert store.by_id(1003) is None
    assert store.by_id(1004) is None
    assert sorted(reg.paths) == [f"/schemas/ids/{i}" for i in (1001, 1002, 1003, 1004)]

    native = {"eventName": "GetSecretValue", "eventSource": "secretsmanager.amazonaws.com"}
    assert avro.decode(encode_confluent(native, v1, 1001))["eventName"] == "GetSecretValue"
    buf = io.BytesIO()
    buf.write(b"\x00" + (1002).to_bytes(4, "big"))
    fastavro.schemaless_writer(buf, writer.parsed, writer.to_avro(native))
    assert avro.decode(buf.getvalue())["eventSource"] == "secretsmanager.amazonaws.com"
