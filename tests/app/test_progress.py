"""The heartbeat progress of a detect member: newest and earliest event time per source
partition, as the runner sends them to the correlate stage."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from detector.app.ingest import Ingestor
from detector.app.pipeline import DetectPipeline
from detector.app.progress import SourceTracker
from detector.detect import RuleSet
from detector.models import Origin, RawRecord

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()


def _record(offset: int, seconds: float, event: str) -> RawRecord:
    when = datetime.fromtimestamp(T0 + seconds, UTC).isoformat().replace("+00:00", "Z")
    value = orjson.dumps(
        {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": "1"},
            "eventTime": when,
            "eventSource": "s3.amazonaws.com",
            "eventName": event,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": "198.51.100.7",
            "eventID": f"ev-{offset}",
            "eventType": "AwsApiCall",
            "recipientAccountId": "1",
        }
    )
    return RawRecord(value, Origin(topic="trail", partition=0, offset=offset))


def test_batch_progress_covers_every_plausible_event_not_only_matches() -> None:
    """With no rule loaded nothing is routed, yet the batch reports the newest and earliest
    event time of its source partition; an event time before 2000 is left out."""
    detect = DetectPipeline(RuleSet(rules=()), default=Ingestor(source="cloudtrail"))
    records = [_record(0, 50, "GetObject"), _record(1, 10, "PutObject"), _record(2, 30, "X")]
    implausible = _record(3, -T0 + 1000, "GetObject")  # 1970
    result = detect.process([*records, implausible])
    assert result.matches == []
    assert result.progress == {"trail/0": T0 + 50}
    assert result.earliest == {"trail/0": T0 + 10}


def test_tracker_keeps_the_earliest_time_ever_and_reports_a_change() -> None:
    """The earliest time per partition only moves back; a heartbeat is due when it moves."""
    tracker = SourceTracker(idle_after=60.0, clock=lambda: 0.0)
    tracker.observe({"t/0"}, {"t/0": 20.0}, {"t/0": 10.0})
    progress = tracker.progress({"t/0", "t/1"}, set())
    assert tracker.earliest_of({"t/0", "t/1"}) == {"t/0": 10.0}
    assert tracker.changed(progress, tracker.earliest_of({"t/0"}))
    tracker.observe({"t/0"}, {"t/0": 15.0}, {"t/0": 12.0})
    assert tracker.earliest_of({"t/0"}) == {"t/0": 10.0}
    assert not tracker.changed(progress, tracker.earliest_of({"t/0"}))
    tracker.observe({"t/0"}, {}, {"t/0": 5.0})
    assert tracker.changed(progress, tracker.earliest_of({"t/0"}))
