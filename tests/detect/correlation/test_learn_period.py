"""A first-seen rule's ``learn`` period is partition-free.

The period starts at the origin, the earliest plausible event time of the input: replay
takes it from the events in merged order, the stream from the earliest event time each
detect member's heartbeat carries per source partition. Every matches partition agrees
on it, so a principal whose group key lands on a partition that saw no candidate before
alerts exactly as in replay (anchored on a partition's first candidate instead, the
stream missed such alerts).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import orjson
from test_arrival_order import _record as arrival_record

from detector.app.ingest import Ingestor
from detector.app.pipeline import DetectPipeline
from detector.app.replay import replay
from detector.detect import load_rules
from detector.models import (
    Origin,
    RawRecord,
    Watermark,
    decode_matches_record,
    encode_routed,
    encode_watermark,
)
from detector.sinks.matches import record_key
from detector.state.partition import EngineFactory, PartitionState

MATCHES_PARTITIONS = 2

RULE = """
title: Secret read from a new address after learning
id: 5e000000-0000-4000-8000-0000000000a1
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: GetSecretValue}
  condition: sel
first_seen:
  fields: [sourceIPAddress]
  group-by: [userIdentity.userName]
  timespan: 1d
  learn: 1h
level: medium
"""


def _record(index: int, seconds: float, user: str) -> RawRecord:
    """A secret read by ``user``, built as the property test builds its records."""
    value = arrival_record(0, index, seconds, user, "GetSecretValue", 1)
    return RawRecord(value, Origin(topic="trail", partition=0, offset=index))


def _factory(tmp_path: Path) -> EngineFactory:
    """Engines of :data:`RULE` as the correlate stage builds them (no allowed lateness)."""
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    ruleset = load_rules([rules])
    detect = DetectPipeline(ruleset, default=Ingestor(source="cloudtrail"))
    return EngineFactory(ruleset, detect.router, allowed_lateness=0)


def test_learning_period_is_the_same_in_replay_and_in_the_stream(tmp_path: Path) -> None:
    """Two principals whose group keys land on different matches partitions: the first is
    seen during the rule's first hour, the second two hours later. Replay alerts on the
    second (its learning period is over); the stream must store the same alerts."""
    rules = tmp_path / "rules.yml"
    rules.write_text(RULE)
    ruleset = load_rules([rules])
    assert not ruleset.errors, ruleset.errors
    detect = DetectPipeline(ruleset, default=Ingestor(source="cloudtrail"))

    # Pick two users whose routed matches go to different matches partitions.
    def target(user: str) -> int:
        routed = detect.process([_record(0, 0, user)]).matches
        return zlib.crc32(record_key(routed[0])) % MATCHES_PARTITIONS

    first = "alice"
    second = next(f"user{n}" for n in range(100) if target(f"user{n}") != target(first))
    records = [_record(0, 0, first), _record(1, 7200, second), _record(2, 3 * 86_400, "zed")]

    path = tmp_path / "trail.jsonl"
    path.write_bytes(b"".join(r.value + b"\n" for r in records))
    expected = {a.id for a in replay([path], ruleset, Ingestor(source="cloudtrail")).alerts}
    assert expected, "replay alerts on the principal first seen after the learning period"

    factory = EngineFactory(ruleset, detect.router, allowed_lateness=0)
    logs: list[list[bytes]] = [[] for _ in range(MATCHES_PARTITIONS)]
    result = detect.process(records)
    for routed in result.matches:
        logs[zlib.crc32(record_key(routed)) % MATCHES_PARTITIONS].append(encode_routed(routed))
    progress = {"trail/0": (max(result.progress.values()), True)}
    for log in logs:
        log.append(encode_watermark(Watermark(0.0, "m", progress, result.earliest)))
    stored: set[str] = set()
    for partition, log in enumerate(logs):
        state = PartitionState(partition, factory)
        for offset, value in enumerate(log):
            state.read(offset, decode_matches_record(value), 1.0)
        stored.update(alert.id for alert in state.release())
    assert stored == expected


def test_a_heartbeat_without_earliest_times_still_decodes() -> None:
    """A heartbeat of an older detect member (no ``earliest``) decodes with none, and a new
    one keeps its earliest times through the codec."""
    mark = Watermark(5.0, "m", {"trail/0": (5.0, False)}, {"trail/0": 1.0})
    assert decode_matches_record(encode_watermark(mark)) == mark
    doc = orjson.loads(encode_watermark(mark))
    del doc["earliest"]
    old = decode_matches_record(orjson.dumps(doc))
    assert isinstance(old, Watermark)
    assert old.sources == mark.sources and old.earliest == {}


def test_the_origin_survives_a_checkpoint_and_old_checkpoints_restore(tmp_path: Path) -> None:
    """The correlate side's origin (earliest reported event time) is kept in the checkpoint
    and restored; a checkpoint without it restores with no origin, and a first-seen
    snapshot of the older format (a learn end per rule) restores its period's start."""
    factory = _factory(tmp_path)
    state = PartitionState(0, factory)
    mark = Watermark(9.0, "m", {"trail/0": (9.0, False)}, {"trail/0": 4.0, "trail/1": 3.0})
    state.read(0, mark, 1.0)
    assert state.clock.origin == 3.0
    saved = state.checkpoint()
    restored = PartitionState(0, factory)
    restored.restore(saved, 2.0)
    assert restored.clock.origin == 3.0

    meta = orjson.loads(saved.sections["meta"])
    del meta["origin"]
    saved.sections["meta"] = orjson.dumps(meta)
    older = PartitionState(0, factory)
    older.restore(saved, 2.0)
    assert older.clock.origin == float("inf")

    rule_id = next(iter(state.first_seen.rule_ids))
    snapshot = {
        "version": 1,
        "kind": "first_seen",
        "parts": [
            {
                "partition": 0,
                "max_time": 100.0,
                "rules": {rule_id: {"seen": [], "learn_until": 3700.0, "counters": {}}},
            }
        ],
    }
    state.first_seen.restore(orjson.dumps(snapshot))
    doc = orjson.loads(state.first_seen.snapshot(0))
    assert doc["parts"][0]["origin"] == 100.0  # learn_until - learn (1h)


def test_expected_source_partitions_hold_the_watermark_until_reported(tmp_path: Path) -> None:
    """A partition state told which source partitions exist keeps its watermark at -inf
    while one of them has not been reported: a first heartbeat of one detect member that
    lists only its own partitions cannot make the other member's records too late. Once
    the other partition reports, the watermark is the min of both; a source that was
    already reported keeps its progress."""
    factory = _factory(tmp_path)

    unaware = PartitionState(0, factory)
    unaware.read(0, Watermark(900.0, "a", {"trail/0": (900.0, False)}, {}), 1.0)
    assert unaware.clock.watermark() == 900.0  # trail/1 would now be too late

    state = PartitionState(0, factory)
    state.read(0, Watermark(900.0, "a", {"trail/0": (900.0, False)}, {}), 1.0)
    state.expect({"trail/0", "trail/1"}, 1.0)
    assert state.clock.sources["trail/0"].time == 900.0
    assert state.clock.watermark() == float("-inf")
    state.read(1, Watermark(100.0, "b", {"trail/1": (100.0, False)}, {}), 2.0)
    assert state.clock.watermark() == 100.0
