"""File framing: whole documents, JSON lines, gzip (bounded), directories, bad files."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from detector.models import DeadLetter, RawRecord
from detector.sources.files import FileLimits, LogStream, iter_records, read_records, split_records


def test_pretty_printed_delivery_file_is_one_record() -> None:
    """An S3-delivery document spread over many lines stays one record (the normalizer
    unwraps ``Records[]``)."""
    data = orjson.dumps({"Records": [{"a": 1}, {"a": 2}]}, option=orjson.OPT_INDENT_2)
    assert data.count(b"\n") > 3
    (record,) = split_records(data, "trail.json")
    assert record.value == data and record.origin.line is None


def test_json_lines_keep_line_numbers_and_skip_blank_lines() -> None:
    """Each non-blank line is a record located by its line number; a broken line is still
    a record (it becomes a dead letter later, the file goes on)."""
    data = b'{"a": 1}\n\n{"a": \n{"a": 3}\n'
    records = list(split_records(data, "x.jsonl"))
    assert [r.origin.line for r in records] == [1, 3, 4]
    assert records[1].value == b'{"a": '


def test_garbage_file_is_one_record_for_one_dead_letter() -> None:
    """A file that is neither a JSON document nor JSON lines is handed on whole."""
    (record,) = split_records(b"\x00\x01 not json\nstill not\n", "bin.log")
    assert record.value.startswith(b"\x00")


def test_gzip_is_inflated_and_bounded(tmp_path: Path) -> None:
    """``.gz`` input is inflated; a small file that inflates past the limit is refused
    instead of exhausting memory (gzip bomb), after the records read before the limit."""
    plain = tmp_path / "ok.json.gz"
    plain.write_bytes(gzip.compress(b'{"a": 1}'))
    with LogStream(str(plain)) as stream:
        assert stream.peek(4) == b'{"a"'
        assert stream.read(100) == b'{"a": 1}'
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b'{"n": 1}\n' * 500_000))
    assert bomb.stat().st_size < 100_000
    items = list(read_records(str(bomb), FileLimits(max_file_bytes=2_500_000)))
    assert 0 < sum(isinstance(i, RawRecord) for i in items) < 500_000
    last = items[-1]
    assert isinstance(last, DeadLetter) and last.reason == "too_large"


def test_corrupt_gzip_and_missing_files_become_dead_letters(tmp_path: Path) -> None:
    """Unreadable input yields a dead letter naming the file; the other files still run."""
    (tmp_path / "a.jsonl").write_bytes(b'{"a": 1}\n')
    (tmp_path / "b.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    items = list(iter_records([tmp_path, tmp_path / "missing.json"]))
    records = [i for i in items if isinstance(i, RawRecord)]
    letters = [i for i in items if isinstance(i, DeadLetter)]
    assert [r.value.strip() for r in records] == [b'{"a": 1}']
    assert sorted(d.reason for d in letters) == ["invalid_gzip", "unreadable"]
    assert all(d.stage == "read" and d.origin.path for d in letters)


def test_directories_expand_to_log_files_only_sorted(tmp_path: Path) -> None:
    """Directory input reads log-like files recursively, in name order, skipping others."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_bytes(b'{"n": 2}\n')
    (tmp_path / "a.json").write_bytes(b'{"n": 1}')
    (tmp_path / "notes.txt").write_bytes(b"hello")
    values = [i.value.strip() for i in iter_records([tmp_path]) if isinstance(i, RawRecord)]
    assert values == [b'{"n": 1}', b'{"n": 2}']
