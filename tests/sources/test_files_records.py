"""A ``{"Records": [...]}`` document over the record limit is streamed, not refused.

CloudTrail S3 delivery files of busy accounts are several MB; their records must
normalize exactly as they would from a document within the limit.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from detector.app.ingest import Ingestor
from detector.app.replay import replay
from detector.decode import DecodeLimits
from detector.detect.loader import load_rules
from detector.models import DeadLetter, Event, RawRecord
from detector.sources.files import FileLimits, _frame, read_records, split_records

SCENARIO = Path("examples/scenario/logs/cloudtrail.jsonl")
#: Awkward strings: escapes, brackets, commas and quotes inside values, non-ASCII.
AWKWARD = {"s": 'a\\"b,]}[{"\u00e9\\\\', "t": "\\u005d\n", "n": [1, {"x": []}]}


def _document(records: Iterable[bytes], indent: bool = False) -> bytes:
    sep = b",\n  " if indent else b","
    return b'{"Records":[' + sep.join(records) + b"]}"


def _records(count: int, **changes: object) -> list[bytes]:
    """The scenario's first CloudTrail records, with awkward strings added."""
    with SCENARIO.open("rb") as lines:
        return [
            orjson.dumps(orjson.loads(next(lines)) | {"awkward": AWKWARD} | changes)
            for _ in range(count)
        ]


def _normalize(
    items: Iterable[RawRecord | DeadLetter], limit: int
) -> tuple[list[Event], list[DeadLetter]]:
    ingestor = Ingestor(limits=DecodeLimits(limit))
    events: list[Event] = []
    letters: list[DeadLetter] = []
    for item in items:
        if isinstance(item, DeadLetter):
            letters.append(item)
            continue
        got, lost = ingestor.ingest(item)
        events.extend(got)
        letters.extend(lost)
    return events, letters


def test_large_document_normalizes_like_a_small_one() -> None:
    """The same records as one document within the limit (one record) and over it
    (streamed in parts): identical events, ids and raw records; every part is within
    the limit and holds the elements' exact bytes."""
    records = _records(60)
    data = _document(records)
    small = list(split_records(data, "trail.json", FileLimits(max_record_bytes=len(data))))
    assert len(small) == 1
    limit = 4096
    parts = list(split_records(data, "trail.json", FileLimits(max_record_bytes=limit)))
    assert len(parts) > 5 and all(isinstance(p, RawRecord) for p in parts)
    assert all(len(p.value) <= limit for p in parts if isinstance(p, RawRecord))
    elements = [
        e for p in parts if isinstance(p, RawRecord) for e in orjson.loads(p.value)["Records"]
    ]
    assert [orjson.dumps(e) for e in elements] == records
    expected, none = _normalize(small, len(data))
    got, letters = _normalize(parts, limit)
    assert none == [] and letters == []
    assert len(got) == 60 and got == expected


@pytest.mark.parametrize("indent", [False, True])
def test_every_chunk_split_gives_the_same_records(indent: bool) -> None:
    """Split into two read chunks at every byte (inside strings, escapes, keys, between
    elements), and into one-byte chunks: the parts are the same each time."""
    records = _records(4)
    data = _document(records, indent)
    limits = FileLimits(max_record_bytes=max(map(len, records)) + 100)
    expected = list(_frame((data,), "t", limits))
    assert len(expected) > 1 and all(isinstance(p, RawRecord) for p in expected)
    for cut in range(1, len(data)):
        assert list(_frame((data[:cut], data[cut:]), "t", limits)) == expected, cut
    assert list(_frame([data[i : i + 1] for i in range(len(data))], "t", limits)) == expected


def test_gzip_and_byte_order_mark(tmp_path: Path) -> None:
    """A gzipped large document (with a BOM, in two gzip members) gives the same events
    as the plain one."""
    data = _document(_records(40))
    limits = FileLimits(max_record_bytes=2048)
    plain = tmp_path / "trail.json"
    plain.write_bytes(data)
    packed = tmp_path / "trail.json.gz"
    half = len(data) // 2
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + data[:half]) + gzip.compress(data[half:]))
    expected = _normalize(read_records(str(plain), limits), 2048)
    assert len(expected[0]) == 40
    got = _normalize(read_records(str(packed), limits), 2048)
    assert [e.id for e in got[0]] == [e.id for e in expected[0]] and got[1] == []


def test_element_over_the_limit_is_one_dead_letter_with_its_index() -> None:
    """One element over the limit is one ``too_large`` dead letter naming ``Records[i]``
    (first bytes kept); the elements around it are read."""
    records = _records(20)
    records[7] = _records(8, blob="x" * 5000)[7]
    events, letters = _normalize(
        split_records(_document(records), "t", FileLimits(max_record_bytes=2048)), 2048
    )
    assert len(events) == 19
    (letter,) = letters
    assert letter.reason == "too_large" and "Records[7]" in letter.detail
    assert 0 < len(letter.value) <= 2048 and data_starts(letter.value, records[7])


def data_starts(value: bytes, element: bytes) -> bool:
    """True if ``value`` is the start of ``element``."""
    return element.startswith(value)


def test_elements_that_are_not_json_are_summarised_and_the_rest_read() -> None:
    """Broken elements are one dead letter with their count and the first one's index;
    the good elements still become events."""
    records = _records(30)
    for i in (3, 4, 20):
        records[i] = b'{"eventName": }'
    events, letters = _normalize(
        split_records(_document(records), "t", FileLimits(max_record_bytes=2048)), 2048
    )
    assert len(events) == 27
    (letter,) = letters
    assert letter.count == 3 and "Records[3]" in letter.detail
    assert letter.value == b'{"eventName": }'


def test_truncated_and_trailing_documents_keep_their_good_records() -> None:
    """A document cut inside an element: the complete elements become events and one
    dead letter says where it ends; data after the document is one dead letter."""
    data = _document(_records(20))
    limits = FileLimits(max_record_bytes=2048)
    events, letters = _normalize(split_records(data[: len(data) * 3 // 4], "t", limits), 2048)
    assert 10 < len(events) < 20
    (letter,) = letters
    assert letter.reason == "invalid_json" and "inside Records[" in letter.detail
    events, letters = _normalize(split_records(data + b" garbage", "t", limits), 2048)
    assert len(events) == 20
    (letter,) = letters
    assert "after the end" in letter.detail


def test_other_documents_over_the_limit_are_still_refused() -> None:
    """A large document without a ``Records`` array stays one ``too_large`` dead letter."""
    data = b'{"events":[' + b",".join(_records(20)) + b"]}"
    (letter,) = split_records(data, "t", FileLimits(max_record_bytes=2048))
    assert isinstance(letter, DeadLetter) and letter.reason == "too_large"


def test_replay_of_a_multi_megabyte_delivery_file_gives_the_same_alerts(tmp_path: Path) -> None:
    """The scenario's CloudTrail records as one S3 delivery document of several MB:
    replayed with the default 1 MiB record limit (streamed) and with a limit above its
    size (one record), the events and alerts are identical."""
    lines = [line for line in SCENARIO.read_bytes().splitlines() if line.strip()]
    path = tmp_path / "delivery.json.gz"
    data = _document(lines)
    assert len(data) > 2 << 20
    path.write_bytes(gzip.compress(data))
    rules = load_rules([Path("detections/rules")])
    streamed = replay([path], rules)
    whole = replay([path], rules, Ingestor(limits=DecodeLimits(len(data) + 1)))
    assert whole.records == 1 and streamed.records > 2
    assert streamed.dead_letters == whole.dead_letters == []
    assert streamed.events == whole.events == len(lines)
    assert len(whole.alerts) > 10
    assert [a.model_dump() for a in streamed.alerts] == [a.model_dump() for a in whole.alerts]


def test_json_lines_of_small_delivery_documents_stay_lines() -> None:
    """A file whose lines are small ``{"Records": [...]}`` documents (together over the
    limit) is JSON lines: one record per line, not a streamed document."""
    records = _records(6)
    data = b"\n".join(_document(records[i : i + 2]) for i in range(0, 6, 2))
    limit = max(map(len, data.split(b"\n"))) + 10
    items = list(split_records(data, "t", FileLimits(max_record_bytes=limit)))
    assert [getattr(item.origin, "line", None) for item in items] == [1, 2, 3]
    assert len(_normalize(items, limit)[0]) == 6
