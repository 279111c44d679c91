"""The ingest path: raw bytes to events or dead letters, never an escaping exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from ecs_helpers import RECORDS, ROOT, fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.app.ingest import Ingestor, ingest, load_schemas
from detector.decode import encode_confluent, encode_single_object
from detector.errors import ConfigError
from detector.models import Origin, RawRecord

STORE = load_schemas(ROOT / "schemas")
JSON = Ingestor()
AUTO = Ingestor(fmt="auto", schemas=STORE)
AVRO = Ingestor(fmt="avro", schemas=STORE)
FIXTURES = sorted((RECORDS).glob("*/*.json"))
FIXTURE_DOCS = [orjson.loads(p.read_bytes()) for p in FIXTURES]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
# Field names the normalizers read, so generated objects reach deep into them.
known_keys = st.sampled_from(
    [
        "eventName",
        "eventSource",
        "eventTime",
        "userIdentity",
        "type",
        "arn",
        "userName",
        "sessionContext",
        "sessionIssuer",
        "attributes",
        "requestParameters",
        "responseElements",
        "Records",
        "detail-type",
        "detail",
        "events",
        "action",
        "target",
        "request",
        "actor",
        "timestamp",
        "operation",
        "op_time",
        "resource",
        "resource_type",
        "event_data",
        "occur_at",
        "@timestamp",
        "actor_ip",
        "_document_id",
        "entity_type",
        "author_id",
        "details",
        "created_at",
        "time",
        "auth",
        "policies",
        "path",
        "remote_address",
        "error",
        "imageIds",
        "repositoryName",
        "sourceIPAddress",
        "addr",
        "host",
        "digest",
        "tag",
        "resources",
    ]
)
shaped_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "request",
            "response",
            "2024-05-14T10:00:00Z",
            "pull",
            "ecr.amazonaws.com",
            "AssumedRole",
            "Root",
            "ConsoleLogin",
            "1.2.3.4",
            "PUSH_ARTIFACT",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(known_keys, children, max_size=8)
    ),
    max_leaves=40,
)


def _answer(ingestor: Ingestor, value: bytes) -> tuple[list[Any], list[Any]]:
    events, dead = ingestor.ingest(RawRecord(value, Origin(topic="t", partition=0, offset=7)))
    assert events or dead, "every input yields an event or an error"
    for letter in dead:
        assert letter.stage in ("decode", "normalize")
        assert letter.reason
        assert letter.origin.offset == 7
        assert letter.value == value
        orjson.dumps(letter.as_dict())
    for event in events:
        orjson.dumps(event.ecs)
        assert isinstance(event.timestamp, float)
        assert event.ecs["event"]["id"] == event.id
    return events, dead


def test_every_fixture_ingests_without_dead_letters() -> None:
    """All fixture files, as bytes, give events and no dead letters."""
    for path in FIXTURES:
        events, dead = _answer(JSON, path.read_bytes())
        assert events and not dead, path.name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.binary(max_size=300))
def test_random_bytes(value: bytes) -> None:
    """Arbitrary bytes, JSON or Avro mode: events or dead letters, nothing escapes."""
    _answer(JSON, value)
    _answer(AUTO, value)
    _answer(AVRO, value)


@settings(max_examples=300, deadline=None)
@given(doc=json_values)
def test_arbitrary_json(doc: Any) -> None:
    """Any JSON value yields events or dead letters."""
    _answer(JSON, orjson.dumps(doc))


@settings(max_examples=500, deadline=None)
@given(doc=shaped_values)
def test_json_shaped_like_the_sources(doc: Any) -> None:
    """Objects built from the sources' field names yield events or dead letters."""
    _answer(JSON, orjson.dumps(doc))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_paths(value, (*prefix, i)))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> Any:
    doc = orjson.loads(orjson.dumps(doc))
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if op == "delete" and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@settings(max_examples=600, deadline=None)
@given(data=st.data())
def test_mutated_fixture_records(data: st.DataObject) -> None:
    """A fixture with one field deleted or replaced by any JSON value: events or errors."""
    doc = data.draw(st.sampled_from(FIXTURE_DOCS))
    path = data.draw(st.sampled_from(_paths(doc)))
    op = data.draw(st.sampled_from(["delete", "replace"]))
    value = data.draw(json_values)
    _answer(JSON, orjson.dumps(_mutate(doc, path, op, value)))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mutated_avro_messages(data: st.DataObject) -> None:
    """Valid Avro messages with a flipped, dropped or inserted byte: events or errors."""
    doc = data.draw(
        st.sampled_from(
            [
                d
                for d in FIXTURE_DOCS
                if "Records" not in d and "events" not in d and "detail" not in d
            ]
        )
    )
    schema = STORE.latest(data.draw(st.sampled_from(["cloudtrail", "registry", "ci", "vault"])))
    if data.draw(st.booleans()):
        message = bytearray(encode_confluent(doc, schema, STORE.id_of(schema)))
    else:
        message = bytearray(encode_single_object(doc, schema))
    at = data.draw(st.integers(0, len(message) - 1))
    op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
    if op == "flip":
        message[at] ^= data.draw(st.integers(1, 255))
    elif op == "drop":
        del message[at]
    else:
        message.insert(at, data.draw(st.integers(0, 255)))
    _answer(AVRO, bytes(message))


def test_dead_letter_names_stage_reason_and_place() -> None:
    """A bad record inside an envelope: normalize stage, reason, location and origin."""
    doc = fixture("cloudtrail", "s3_delivery_envelope")
    doc["Records"][0]["eventTime"] = "not a time"
    value = orjson.dumps(doc)
    events, dead = ingest(RawRecord(value, Origin(path="trail.json", line=3)))
    assert len(events) == 1
    (letter,) = dead
    assert letter.as_dict()["stage"] == "normalize"
    assert letter.reason == "invalid_time"
    assert letter.detail.startswith("Records[0]: ")
    assert letter.as_dict()["origin"] == {"path": "trail.json", "line": 3}


def test_auto_format_tells_avro_from_json() -> None:
    """``fmt=auto`` decodes both wire formats of the same record to the same ECS."""
    doc = fixture("vault", "kv_read_request")
    schema = STORE.latest("vault")
    from_json, _ = AUTO.ingest(RawRecord(orjson.dumps(doc), Origin()))
    from_avro, _ = AUTO.ingest(RawRecord(encode_single_object(doc, schema), Origin()))
    assert from_json[0].ecs == from_avro[0].ecs
    assert from_json[0].raw == from_avro[0].raw


@pytest.mark.parametrize("kwargs", [{"fmt": "xml"}, {"fmt": "avro"}, {"source": "syslog"}])
def test_bad_ingestor_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    """Unknown formats/sources and Avro without schemas fail at start-up."""
    with pytest.raises(ConfigError):
        Ingestor(**kwargs)


def test_schema_directory_is_part_of_the_repo() -> None:
    """The schema directory with its id map ships in the repository."""
    assert (ROOT / "schemas" / "registry.yaml").is_file()
    assert isinstance(ROOT, Path)
