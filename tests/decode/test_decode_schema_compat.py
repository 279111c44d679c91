"""Each schema version is backward compatible with the previous one (read old with new)."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

from detector.app.ingest import load_schemas
from detector.decode import AvroSchema

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
RECORDS = ROOT / "tests" / "fixtures" / "records"
STORE = load_schemas(SCHEMAS)
FAMILIES: dict[str, list[AvroSchema]] = defaultdict(list)
for _schema in STORE.schemas:
    FAMILIES[_schema.family].append(_schema)
PAIRS = [
    (versions[i], versions[i + 1])
    for versions in (sorted(v, key=lambda s: s.version) for v in FAMILIES.values())
    for i in range(len(versions) - 1)
]


def _natives(family: str) -> list[dict[str, Any]]:
    """Every fixture record of the family, envelopes unwrapped."""
    out: list[dict[str, Any]] = []
    for path in sorted((RECORDS / family).glob("*.json")):
        doc = orjson.loads(path.read_bytes())
        if "Records" in doc:
            out.extend(doc["Records"])
        elif "detail" in doc:
            out.append(doc["detail"])
        elif "events" in doc and "action" not in doc:
            out.extend(doc["events"])
        else:
            out.append(doc)
    return out


def test_every_family_has_a_schema_and_versions_are_contiguous() -> None:
    """Four families, versions 1..N without gaps, one file per version."""
    assert set(FAMILIES) == {"cloudtrail", "registry", "ci", "vault"}
    for versions in FAMILIES.values():
        assert sorted(s.version for s in versions) == list(range(1, len(versions) + 1))
    assert PAIRS, "at least one family has two versions"


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=lambda s: s.name)
def test_new_version_reads_old_data(old: AvroSchema, new: AvroSchema) -> None:
    """Data written with version N decodes with N+1 as reader, to the same native record."""
    for native in _natives(old.family):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, old.parsed, old.to_avro(native))
        buf.seek(0)
        decoded = fastavro.schemaless_reader(buf, old.parsed, new.parsed)
        assert new.to_native(decoded) == native


@pytest.mark.parametrize(("old", "new"), PAIRS, ids=lambda s: s.name)
def test_added_fields_have_defaults(old: AvroSchema, new: AvroSchema) -> None:
    """Every field new in N+1 has a default (what makes old data readable)."""
    old_names = {f["name"] for f in old.definition["fields"]}
    added = [f for f in new.definition["fields"] if f["name"] not in old_names]
    assert added
    assert all("default" in f for f in added)
