"""Families, sources and wire formats are one definition each, which every reader agrees on."""

from __future__ import annotations

from pathlib import Path

import orjson

from detector.app.ingest import Ingestor, load_schemas
from detector.app.settings import TopicConfig
from detector.models import FAMILIES, SOURCES, WIRE_FORMATS, Origin, RawRecord
from detector.normalize import NORMALIZERS, Normalizer
from detector.sources.kafka import KafkaSourceConfig

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
RECORD = ROOT / "tests" / "fixtures" / "records" / "cloudtrail" / "cloudtrail_stoplogging.json"


def test_every_wire_format_is_a_valid_topic_setting_and_ingests() -> None:
    """Each wire format the ingest path knows (``auto`` included) is accepted by the
    topic settings and builds an ingestor; those that take JSON (``auto`` too) read a
    JSON record."""
    record = RawRecord(orjson.dumps(orjson.loads(RECORD.read_bytes())), Origin())
    for fmt in WIRE_FORMATS:
        config = TopicConfig(source="cloudtrail", format=fmt)
        schemas = load_schemas(SCHEMAS) if config.format != "json" else None
        ingestor = Ingestor(source=config.source, fmt=config.format, schemas=schemas)
        if fmt != "avro":
            events, dead = ingestor.ingest(record)
            assert (len(events), dead) == (1, []), fmt


def test_every_source_name_is_accepted_everywhere() -> None:
    """Each family has a normalizer, is a default topic, and is (with ``auto``) a valid
    topic source and ``Normalizer`` source."""
    assert set(NORMALIZERS) == set(FAMILIES)
    assert KafkaSourceConfig().topics == list(FAMILIES)
    assert ("auto", *FAMILIES) == SOURCES
    for source in SOURCES:
        assert TopicConfig(source=source).source == source
        Normalizer(source)
