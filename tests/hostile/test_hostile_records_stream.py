"""A multi-MB ``{"Records": [...]}`` document of bad elements gives bounded dead letters."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest
from hostile_inputs import CEILING_MIB, LARGE, cloudtrail, records_of_zeros, run_cli, stderr_letters

from detector.app.replay import replay
from detector.detect.loader import load_rules
from detector.sources.files import read_records

MIB = 1 << 20


def test_document_of_bad_records_over_the_limit_is_summarised(tmp_path: Path) -> None:
    """3 MB of zeros and 3 MB of broken elements, gzipped: the streamed document gives
    one summarising dead letter per part (each part within the 1 MiB limit) plus one for
    the elements that are not JSON, never one per element; all elements are counted."""
    zeros = records_of_zeros(1_500_000)
    broken = b'{"Records":[' + b",".join([b"{]"] * 600_000) + b"]}"
    path = tmp_path / "zeros.json.gz"
    path.write_bytes(gzip.compress(zeros))
    result = replay([path], load_rules([Path("detections/rules")]))
    assert result.events == 0
    assert len(zeros) > 2 * MIB and len(result.dead_letters) <= len(zeros) // MIB + 2
    assert sum(letter.count for letter in result.dead_letters) == 1_500_000
    assert {letter.reason for letter in result.dead_letters} == {"wrong_type"}

    other = tmp_path / "broken.json"
    other.write_bytes(broken)
    (letter,) = read_records(str(other))
    assert letter.reason == "invalid_json" and letter.count == 600_000
    assert "first: Records[0]" in letter.detail


@pytest.mark.skipif(not LARGE, reason="large hostile inputs: DETECTOR_HOSTILE_LARGE=1")
def test_s3_delivery_of_64_mib(tmp_path: Path) -> None:
    """A gzipped S3 delivery document of 64 MiB (150,000 records): every record becomes
    an event, no dead letter, and peak memory follows the record limit, not the file."""
    count = 150_000
    records = b",".join(orjson.dumps(cloudtrail(i)) for i in range(count))
    data = b'{"Records":[' + records + b"]}"
    path = tmp_path / "delivery.json.gz"
    path.write_bytes(gzip.compress(data, compresslevel=1))
    run = run_cli(tmp_path, "normalize", str(path))
    assert stderr_letters(run) == []
    assert len(run.stdout.splitlines()) == count
    print(f"\nhostile-large S3 delivery of {len(data) >> 20} MiB: peak {run.peak_mib:.0f} MiB")
    assert run.peak_mib < CEILING_MIB
