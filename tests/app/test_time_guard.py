"""Event time cannot be weaponised: an implausible event time moves no watermark.

One valid record with ``eventTime`` 9999-12-31 (or before the floor) is still evaluated
by single-event rules, flagged (``event.ingested`` and a reason) and counted; it is never
routed to the correlate stage, never counts in a heartbeat's progress, never enters a
replay window, and its alert says its time was implausible.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
from conftest import pack_rules
from structlog.testing import capture_logs

from detector.app.ingest import Ingestor
from detector.app.pipeline import DetectPipeline, TimeGuard
from detector.app.replay import replay
from detector.models import Origin, RawRecord, time_implausible

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "examples" / "scenario" / "logs"


def _forged(line: bytes, when: str, event_id: str) -> bytes:
    record = orjson.loads(line)
    record["eventTime"] = when
    record["eventID"] = event_id
    return orjson.dumps(record)


def test_one_far_future_record_blinds_no_scenario_alert(tmp_path: Path) -> None:
    """The scenario plus one CloudTrail record dated 9999-12-31: every alert of the
    scenario still fires with the same id, nothing is too late, and the forged record's
    own alerts say its time was implausible."""
    rules = pack_rules([ROOT / "detections" / "rules"])
    assert not rules.errors
    base = replay(sorted(SCENARIO.glob("*.jsonl")), rules)
    for path in SCENARIO.glob("*.jsonl"):
        shutil.copy(path, tmp_path / path.name)
    # a record some single-event rule alerts on, dated 9999-12-31
    fired = next(
        a.raw_events[0]
        for a in base.alerts
        if a.rule.type == "sigma" and "eventTime" in a.raw_events[0]
    )
    with (tmp_path / "cloudtrail.jsonl").open("ab") as out:
        line = orjson.dumps(fired)
        out.write(_forged(line, "9999-12-31T23:59:59Z", "forged-9999") + b"\n")
    forged = replay(sorted(tmp_path.glob("*.jsonl")), rules)
    assert {a.id for a in base.alerts} <= {a.id for a in forged.alerts}
    assert forged.too_late_events == 0
    own = [a for a in forged.alerts if any(e["event"]["id"] == "forged-9999" for e in a.events)]
    assert own and all("event time implausible" in a.reason for a in own)
    assert all(a.rule.type == "sigma" for a in own)  # in no window, no first-seen memory


def test_detect_stage_keeps_implausible_events_out_of_progress_and_routing() -> None:
    """In the detect stage the Kafka timestamp is the arrival: an event an hour ahead of it
    (and one before the floor) is flagged, counted, alerts for single-event rules, and
    neither routes a match nor moves its partition's progress."""
    rules = pack_rules([ROOT / "detections" / "rules"])
    pipeline = DetectPipeline(rules, default=Ingestor(source="cloudtrail"))
    line = (SCENARIO / "cloudtrail.jsonl").read_bytes().splitlines()[0]
    good = orjson.loads(line)
    arrival_ms = 1_800_000_000_000  # 2027-01-15
    records = [
        RawRecord(
            _forged(line, "2027-01-15T09:00:00Z", "ahead"),
            Origin("trail", 0, 1),
            timestamp_ms=arrival_ms,
        ),
        RawRecord(_forged(line, "1970-01-02T00:00:00Z", "old"), Origin("trail", 1, 1)),
        RawRecord(orjson.dumps(good), Origin("trail", 2, 1)),
    ]
    result = pipeline.process(records)
    assert pipeline.implausible == 2
    assert {m.match.event.origin.partition for m in result.matches} <= {2}
    assert set(result.progress) == {"trail/2"}


def test_guard_flags_with_ingested_time_and_reason() -> None:
    """The flag is ECS ``event.ingested`` (the arrival) plus ``detector.time_implausible``;
    a time within the bound is left alone."""
    guard = TimeGuard(max_ahead=900, clock=lambda: 1_800_000_000.0)
    rules = pack_rules([ROOT / "detections" / "rules"])
    pipeline = DetectPipeline(rules, default=Ingestor(source="cloudtrail"))
    line = (SCENARIO / "cloudtrail.jsonl").read_bytes().splitlines()[0]
    events, _ = pipeline.ingest([RawRecord(_forged(line, "2027-01-15T08:10:00Z", "a"), Origin())])
    assert not guard.check(events[0], RawRecord(b"", Origin()))  # 10 minutes ahead: plausible
    events, _ = pipeline.ingest([RawRecord(_forged(line, "2027-01-15T09:00:00Z", "b"), Origin())])
    assert guard.check(events[0], RawRecord(b"", Origin()))
    assert events[0].ecs["event"]["ingested"].startswith("2027-01-15T08:00:00")
    assert time_implausible(events[0]) == "3600 s after the record arrived"


def test_a_batch_of_forged_times_is_one_warning_with_a_count_and_samples() -> None:
    """Hostile input costs one log line per batch, not one per event: 50 records dated
    9999-12-31 in one batch give one ``implausible_event_time`` warning with the count
    and three sample events (id, origin, reason); a clean batch logs none."""
    rules = pack_rules([ROOT / "detections" / "rules"])
    pipeline = DetectPipeline(rules, default=Ingestor(source="cloudtrail"))
    line = (SCENARIO / "cloudtrail.jsonl").read_bytes().splitlines()[0]
    forged = [
        RawRecord(_forged(line, "9999-12-31T23:59:59Z", f"f{n}"), Origin("trail", 0, n))
        for n in range(50)
    ]
    with capture_logs() as logs:
        pipeline.process(forged)
        pipeline.process([RawRecord(line, Origin("trail", 0, 50))])
    (warning,) = [e for e in logs if e["event"] == "implausible_event_time"]
    assert warning["count"] == 50
    assert [s["event_id"] for s in warning["samples"]] == ["f0", "f1", "f2"]
    assert warning["samples"][0]["origin"] == "trail/0@0"
    assert "after the record arrived" in warning["samples"][0]["reason"]
    assert pipeline.implausible == 50
