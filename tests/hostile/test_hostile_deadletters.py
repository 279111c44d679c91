"""A bad record is dead-lettered once, whatever the number of bad elements it wraps."""

from __future__ import annotations

from pathlib import Path

import orjson
from hostile_inputs import (
    cloudtrail,
    distribution_of_empties,
    records_of_zeros,
    run_cli,
    stderr_letters,
)

from detector.app.ingest import Ingestor
from detector.app.replay import replay
from detector.detect import load_rules
from detector.models import Origin, RawRecord
from detector.sinks.deadletters import deadletter_headers


def test_records_of_zeros_give_one_letter_holding_the_record_once() -> None:
    """``{"Records":[0,0,...]}``: one dead letter, the record's bytes once, the count of
    bad elements in the letter and in its Kafka headers (was one letter per zero)."""
    value = records_of_zeros(20_000)
    events, letters = Ingestor().ingest(RawRecord(value, Origin(topic="t", partition=0, offset=7)))
    assert events == []
    (letter,) = letters
    assert letter.value == value
    assert letter.count == 20_000
    assert letter.reason == "wrong_type"
    assert letter.detail.startswith(
        "20000 of 20000 records bad (wrong_type x20000); first: Records[0]"
    )
    headers = dict(deadletter_headers(letter))
    assert headers["detector.bad_elements"] == b"20000"
    assert headers["detector.origin.offset"] == b"7"


def test_good_records_of_a_mixed_envelope_still_become_events() -> None:
    """The good records of an envelope are events; the bad ones are one counted letter."""
    doc = {"Records": [cloudtrail(1), 0, cloudtrail(2), {"eventSource": "x"}, cloudtrail(3)]}
    events, letters = Ingestor().ingest(RawRecord(orjson.dumps(doc), Origin(path="t.json")))
    assert len(events) == 3
    (letter,) = letters
    assert letter.count == 2
    assert "2 of 5 records bad" in letter.detail
    assert "wrong_type x1" in letter.detail and "missing_field x1" in letter.detail


def test_one_bad_element_keeps_its_plain_located_letter() -> None:
    """With one bad element the letter is as before: its reason and location, count 1."""
    doc = {"Records": [cloudtrail(1), {"eventSource": "sts.amazonaws.com"}]}
    _, (letter,) = Ingestor().ingest(RawRecord(orjson.dumps(doc), Origin(path="t.json")))
    assert (letter.reason, letter.detail, letter.count) == (
        "missing_field",
        "Records[1]: eventName",
        1,
    )


def test_distribution_envelope_of_empty_events_is_one_stderr_line(tmp_path: Path) -> None:
    """``detector normalize`` on a Distribution line with many empty events prints one
    summarised dead letter with the count (was one line, with the record, per event)."""
    path = tmp_path / "registry.jsonl"
    value = distribution_of_empties(10_000)
    path.write_bytes(value + b"\n" + orjson.dumps(cloudtrail(1)) + b"\n")
    run = run_cli(tmp_path, "normalize", str(path))
    assert run.code == 0
    (letter,) = stderr_letters(run)
    assert letter["bad_elements"] == 10_000
    assert letter["origin"] == {"path": str(path), "line": 1}
    assert len(run.stderr) < 10_000  # one line: the record truncated once, not 10,000 times
    assert len(run.stdout.splitlines()) == 1  # the good line still normalizes


def test_replay_counts_the_envelope_once(tmp_path: Path) -> None:
    """Replay keeps one dead letter (with the count) for an envelope of bad records, and
    not the record's bytes: only the reasons and counts are reported."""
    path = tmp_path / "trail.json"
    path.write_bytes(records_of_zeros(5_000))
    result = replay([path], load_rules([Path("detections/rules")]))
    (letter,) = result.dead_letters
    assert (letter.reason, letter.count, letter.value) == ("wrong_type", 5_000, b"")
