"""Framing loses nothing: a bad first line, a byte-order mark, gzip members, documents."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from hostile_inputs import cloudtrail, gzip_members, jsonl

from detector.app.ingest import Ingestor
from detector.models import DeadLetter, RawRecord
from detector.sources.files import read_records

BAD_FIRST_LINES = {
    "truncated": b'{"eventVersion": "1.08", "eventTi',
    "invalid_utf8": b'{"eventName": "\xff\xfe"}',
    "nul": b"\x00\x00\x00",
    "text": b"this is not json",
}


def _ingest(path: Path) -> tuple[int, list[DeadLetter]]:
    """Events and dead letters of one file through framing and ingest."""
    ingestor = Ingestor()
    events = 0
    letters: list[DeadLetter] = []
    for item in read_records(str(path)):
        if isinstance(item, DeadLetter):
            letters.append(item)
            continue
        got, lost = ingestor.ingest(item)
        events += len(got)
        letters.extend(lost)
    return events, letters


@pytest.mark.parametrize("kind", sorted(BAD_FIRST_LINES))
def test_bad_first_line_is_one_dead_letter_and_the_rest_is_read(tmp_path: Path, kind: str) -> None:
    """A JSON-lines file whose first line is broken: that line is one dead letter (line 1),
    the 100 good lines are 100 events (the whole file was one dead letter)."""
    path = tmp_path / "trail.jsonl"
    path.write_bytes(BAD_FIRST_LINES[kind] + b"\n" + jsonl(100))
    events, letters = _ingest(path)
    assert events == 100
    (letter,) = letters
    assert letter.origin.line == 1 and letter.value == BAD_FIRST_LINES[kind]


def test_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    """A UTF-8 BOM (files exported on Windows) is not part of the first record."""
    path = tmp_path / "trail.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + jsonl(100))
    assert _ingest(path) == (100, [])
    single = tmp_path / "one.json"
    single.write_bytes(b"\xef\xbb\xbf" + orjson.dumps({"Records": [cloudtrail(1)]}))
    assert _ingest(single) == (1, [])


def test_every_gzip_member_is_read(tmp_path: Path) -> None:
    """``cat a.gz b.gz``: both members are read (only the first was, silently)."""
    path = tmp_path / "trail.jsonl.gz"
    path.write_bytes(gzip_members(jsonl(50), jsonl(50, start=50), jsonl(7, start=100)))
    assert _ingest(path) == (107, [])


def test_truncated_gzip_keeps_what_was_read_and_says_so(tmp_path: Path) -> None:
    """A gzip cut short: the records before the cut are kept, then one ``invalid_gzip``
    dead letter names the file."""
    data = gzip_members(jsonl(200))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    items = list(read_records(str(path)))
    records = [i for i in items if isinstance(i, RawRecord)]
    assert 0 < len(records) < 200
    assert isinstance(items[-1], DeadLetter) and items[-1].reason == "invalid_gzip"


def test_pretty_printed_document_is_chosen_by_structure(tmp_path: Path) -> None:
    """A document spread over lines is one record even though no line parses alone; a
    JSON-lines file is lines even when its first line does not parse."""
    doc = orjson.dumps({"Records": [cloudtrail(i) for i in range(3)]}, option=orjson.OPT_INDENT_2)
    path = tmp_path / "trail.json"
    path.write_bytes(doc)
    (record,) = read_records(str(path))
    assert isinstance(record, RawRecord) and record.value == doc
    assert _ingest(path) == (3, [])


def test_truncated_document_is_one_dead_letter_not_one_per_line(tmp_path: Path) -> None:
    """A pretty-printed document cut short is one record for one dead letter, not one
    dead letter per line."""
    doc = orjson.dumps({"Records": [cloudtrail(i) for i in range(3)]}, option=orjson.OPT_INDENT_2)
    path = tmp_path / "cut.json"
    path.write_bytes(doc[: len(doc) // 2])
    events, letters = _ingest(path)
    assert events == 0
    (letter,) = letters
    assert letter.reason == "invalid_json" and letter.origin.line is None


def test_gzip_member_of_a_document_and_stdin_names(tmp_path: Path) -> None:
    """A gzip'd S3 delivery document is one record whatever the file name."""
    path = tmp_path / "delivery"
    path.write_bytes(gzip.compress(orjson.dumps({"Records": [cloudtrail(1), cloudtrail(2)]})))
    assert _ingest(path) == (2, [])
