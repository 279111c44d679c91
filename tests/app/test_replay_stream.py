"""Streaming replay: bounded reorder buffers per file, merged by event time."""

from __future__ import annotations

import gzip
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import orjson
from conftest import pack_rules

from detector.app.replay import ReorderBound, _in_order, replay
from detector.app.settings import DetectorSettings
from detector.detect import load_rules
from detector.models import Event, LogSource

INPUTS = [Path("examples/scenario/logs"), Path("examples/samples")]


def test_default_bound_gives_the_complete_sort_on_the_scenario_and_samples() -> None:
    """With the default reorder bound, replay of the scenario and the vendored samples
    writes exactly what a complete sort of all events gives (alerts, ids and content,
    counts), and no event is late."""
    paths = DetectorSettings().rules.paths
    streamed = replay(INPUTS, pack_rules(paths))
    sorted_ = replay(INPUTS, pack_rules(paths), None, None, ReorderBound.unbounded())
    assert streamed.alerts
    assert streamed.alerts == sorted_.alerts
    assert (streamed.records, streamed.events, streamed.too_late_events) == (
        sorted_.records,
        sorted_.events,
        sorted_.too_late_events,
    )
    assert [(d.stage, d.reason) for d in streamed.dead_letters] == [
        (d.stage, d.reason) for d in sorted_.dead_letters
    ]
    assert streamed.late_events == sorted_.late_events == 0


def _event(n: int, at: float) -> Event:
    return Event(f"e{n:05d}", at, "cloudtrail", LogSource("aws", "cloudtrail"), {}, {})


def test_reorder_buffer_never_holds_more_than_its_bound() -> None:
    """Whatever the input, at most ``events`` events wait in a buffer; events out of order
    within the bound come out sorted, the others are counted late and still passed on."""
    rng = random.Random(5)
    events = [_event(n, n + rng.uniform(-30, 0)) for n in range(5_000)]
    consumed = 0

    def source() -> Iterator[Event]:
        nonlocal consumed
        for event in events:
            consumed += 1
            yield event

    class Counts:
        late_events = 0

    counts = Counts()
    bound = ReorderBound(seconds=10, events=8)
    out = []
    for event in _in_order(source(), bound, counts):  # type: ignore[arg-type]
        assert consumed - len(out) <= bound.events + 1
        out.append(event)
    assert sorted(e.id for e in out) == sorted(e.id for e in events)
    keys = [(e.timestamp, e.id) for e in out]
    descents = sum(1 for a, b in itertools.pairwise(keys) if b < a)
    assert 0 < descents <= counts.late_events

    counts.late_events = 0
    unbounded = list(_in_order(iter(events), ReorderBound.unbounded(), counts))  # type: ignore[arg-type]
    assert unbounded == sorted(events, key=lambda e: (e.timestamp, e.id))
    assert counts.late_events == 0


def test_late_events_are_counted_in_the_summary_and_none_is_lost(tmp_path: Path) -> None:
    """A file out of order by more than the bound: every record is still detected (one
    alert each), the late ones are counted, and two files are merged by event time."""
    rule = tmp_path / "rule.yml"
    rule.write_text(
        "title: Secret read\nid: 6f1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e12\nstatus: test\n"
        "logsource: {product: aws, service: cloudtrail}\n"
        "detection:\n  selection:\n    eventName: GetSecretValue\n  condition: selection\n"
        "level: high\n"
    )
    minutes = [5, 6, 7, 40, 2, 41, 42, 3, 43]  # 2 and 3 come after 7 was released: late
    lines = [
        orjson.dumps(
            {
                "eventVersion": "1.08",
                "userIdentity": {"type": "IAMUser", "userName": f"u{m}"},
                "eventTime": f"2026-11-28T10:{m:02d}:00Z",
                "eventSource": "secretsmanager.amazonaws.com",
                "eventName": "GetSecretValue",
                "eventID": f"id-{m:02d}",
                "awsRegion": "eu-west-1",
            }
        )
        for m in minutes
    ]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "b.jsonl").write_bytes(lines[0].replace(b"id-05", b"id-b5") + b"\n")
    result = replay(
        [tmp_path / "a.jsonl", tmp_path / "b.jsonl"],
        load_rules([rule]),
        None,
        None,
        ReorderBound(seconds=300, events=100),
    )
    assert result.records == result.events == len(minutes) + 1
    assert len(result.alerts) == len(minutes) + 1
    assert result.late_events == 2


def test_progress_follows_the_compressed_bytes_of_a_gzip_file(tmp_path: Path) -> None:
    """For a gzip file the progress callback counts the bytes read from the file (the
    unit of its total, so the bar and its ETA are right): it never exceeds the file's
    size, grows with the events, is still short of the size when half of the events are
    done (counting inflated record bytes, capped at the size, reached it then) and ends
    at the size."""
    rng = random.Random(3)
    lines = [
        orjson.dumps(
            {
                "eventVersion": "1.08",
                "eventTime": f"2026-11-28T1{n // 6000}:{n // 100 % 60:02d}:{n % 60:02d}Z",
                "eventSource": "s3.amazonaws.com",
                "eventName": "GetObject",
                "eventID": f"id-{n:06d}",
                "requestParameters": {"key": rng.randbytes(300).hex()},
            }
        )
        for n in range(20_000)
    ]
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    reports: list[tuple[int, int, int]] = []
    bound = ReorderBound(seconds=60, events=100)
    result = replay([packed], load_rules([]), None, lambda *r: reports.append(r), bound)
    total = packed.stat().st_size
    assert result.events == len(lines) and len(reports) > 5
    assert all(t == total and 0 < d <= total for d, t, _ in reports)
    assert [d for d, _, _ in reports] == sorted(d for d, _, _ in reports)
    assert all(d < 0.8 * total for d, _, events in reports if events <= len(lines) // 2)
    assert reports[-1][0] == total


def _secret_reads(path: Path, minutes: range, prefix: str, per_minute: int = 1) -> Path:
    """A JSON-lines file of ``per_minute`` GetSecretValue records a minute of day 28."""
    path.write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "eventVersion": "1.08",
                    "userIdentity": {"type": "IAMUser", "userName": "u"},
                    "eventTime": f"2026-11-28T{m // 60:02d}:{m % 60:02d}:"
                    f"{k * 60 // per_minute:02d}Z",
                    "eventSource": "secretsmanager.amazonaws.com",
                    "eventName": "GetSecretValue",
                    "eventID": f"{prefix}-{m:04d}-{k:02d}",
                    "awsRegion": "eu-west-1",
                }
            )
            + b"\n"
            for m in minutes
            for k in range(per_minute)
        )
    )
    return path


def test_files_consecutive_in_time_are_opened_one_after_the_other(tmp_path: Path) -> None:
    """A folder of 24 files of an hour each (8,640 records): replay reads a file only
    when the merge reaches its first event time less the reorder bound, so the bytes
    read never run more than two files ahead of the events merged (all files were read
    at once before), and gives what a complete sort of all files gives."""
    rule = tmp_path / "rule.yml"
    rule.write_text(
        "title: Secret read\nid: 6f1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e13\nstatus: test\n"
        "logsource: {product: aws, service: cloudtrail}\n"
        "detection:\n  selection:\n    eventName: GetSecretValue\n  condition: selection\n"
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    for hour in range(24):
        _secret_reads(logs / f"h{hour:02d}.jsonl", range(hour * 60, hour * 60 + 60), "e", 6)
    size = (logs / "h00.jsonl").stat().st_size
    reports: list[tuple[int, int, int]] = []
    rules = load_rules([rule])
    bound = ReorderBound(seconds=300, events=30)
    result = replay([logs], rules, None, lambda *r: reports.append(r), bound)
    assert len(reports) > 3
    for done, total, events in reports:
        assert done <= total * events / result.events + 2 * size, (done, events)
    whole = replay([logs], rules, None, None, ReorderBound.unbounded())
    assert len(result.alerts) == result.events == 24 * 60 * 6
    assert result.alerts == whole.alerts and result.late_events == 0


def test_a_file_reaching_back_beyond_the_bound_before_it_opens_is_counted_late(
    tmp_path: Path,
) -> None:
    """A file whose second record is earlier than its first by more than the reorder
    bound is opened when the merge reaches its first time less the bound: the earlier
    record is already behind the merge, so it is counted late and still detected."""
    rule = tmp_path / "rule.yml"
    rule.write_text(
        "title: Secret read\nid: 6f1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e14\nstatus: test\n"
        "logsource: {product: aws, service: cloudtrail}\n"
        "detection:\n  selection:\n    eventName: GetSecretValue\n  condition: selection\n"
    )
    first = _secret_reads(tmp_path / "a.jsonl", range(0, 120), "a")
    second = _secret_reads(tmp_path / "b.jsonl", range(100, 110), "b")
    lines = second.read_bytes().splitlines(keepends=True)
    early = _secret_reads(tmp_path / "c.jsonl", range(30, 31), "b").read_bytes()
    second.write_bytes(lines[0] + early + b"".join(lines[1:]))
    result = replay([first, second], load_rules([rule]), None, None, ReorderBound(300, 100))
    assert result.events == len(result.alerts) == 120 + 11
    assert result.late_events == 1
