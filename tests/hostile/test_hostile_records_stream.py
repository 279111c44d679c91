"""A multi-MB ``{"Records": [...]}`` document of bad elements gives bounded dead letters."""

from __future__ import annotations

import gzip
from pathlib import Path

from hostile_inputs import records_of_zeros

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
