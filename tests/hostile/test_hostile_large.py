"""The hostile inputs at the sizes of the original campaign, with their peak memory.

Opt-in (minutes, gigabytes of inflated input): ``DETECTOR_HOSTILE_LARGE=1 pytest -s
tests/hostile/test_hostile_large.py``. Each case runs ``detector`` in a fresh process,
checks the behaviour, prints its peak resident memory and asserts it stays under the
ceiling of docs/hostile-input.md.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hostile_inputs import (
    CEILING_MIB,
    LARGE,
    RULE,
    Run,
    avro_deflate_bomb,
    avro_empty_records,
    big_rule,
    bracket_bomb,
    cloudtrail,
    deep_yaml,
    distribution_of_empties,
    gzip_members,
    jsonl,
    records_of_zeros,
    run_cli,
    run_python,
    stderr_letters,
    zero_bomb,
)

pytestmark = pytest.mark.skipif(not LARGE, reason="large hostile inputs: DETECTOR_HOSTILE_LARGE=1")


def _report(case: str, run: Run) -> None:
    print(f"\nhostile-large {case}: peak {run.peak_mib:.0f} MiB (ceiling {CEILING_MIB} MiB)")
    assert run.peak_mib < CEILING_MIB


def test_records_of_zeros_1mb(tmp_path: Path) -> None:
    """A 1 MB ``{"Records":[0,...]}``: one dead letter counting 500,000 bad records."""
    path = tmp_path / "zeros.json"
    path.write_bytes(records_of_zeros(500_000))
    run = run_cli(tmp_path, "normalize", str(path))
    (letter,) = stderr_letters(run)
    assert letter["bad_elements"] == 500_000
    _report("Records of 500,000 zeros", run)


@pytest.mark.parametrize("count", [100_000, 340_000])
def test_distribution_of_empty_events(tmp_path: Path, count: int) -> None:
    """A Distribution line of 100,000 (or a 1 MB envelope of 340,000) empty events: one
    stderr line (was 573 MB of stderr)."""
    path = tmp_path / "registry.jsonl"
    path.write_bytes(distribution_of_empties(count) + b"\n")
    run = run_cli(tmp_path, "normalize", str(path))
    (letter,) = stderr_letters(run)
    assert letter["bad_elements"] == count
    print(f"\nhostile-large stderr for {count:,} bad events: {len(run.stderr):,} bytes")
    _report(f"Distribution of {count:,} empty events", run)


def test_bad_first_line_and_gzip_members(tmp_path: Path) -> None:
    """A BOM, a bad first line and two gzip members of 2,292 records: all 4,584 read."""
    path = tmp_path / "trail.jsonl.gz"
    first = b"\xef\xbb\xbf" + b'{"truncated' + b"\n" + jsonl(2_292)
    path.write_bytes(gzip_members(first, jsonl(2_292, start=2_292)))
    run = run_cli(tmp_path, "normalize", str(path))
    assert len(run.stdout.splitlines()) == 4_584
    assert len(stderr_letters(run)) == 1
    _report("bad first line + 2 gzip members", run)


def test_avro_container_of_2_31_records(tmp_path: Path) -> None:
    """118 bytes declaring 2^31 empty records: one dead letter, no MemoryError."""
    path = tmp_path / "empty.avro"
    path.write_bytes(avro_empty_records(2**31))
    run = run_cli(tmp_path, "normalize", "--format", "auto", str(path))
    (letter,) = stderr_letters(run)
    assert letter["reason"] == "too_large"
    _report(f"Avro container of {len(path.read_bytes())} bytes declaring 2^31 records", run)


def test_avro_deflate_block_of_1_5_gib(tmp_path: Path) -> None:
    """A deflate block inflating to 1.5 GiB in a 1.5 MB file: refused at 16 MiB."""
    path = tmp_path / "bomb.avro"
    path.write_bytes(avro_deflate_bomb(3 << 29))
    run = run_cli(tmp_path, "normalize", "--format", "auto", str(path))
    (letter,) = stderr_letters(run)
    assert letter["reason"] == "too_large"
    _report(f"Avro deflate block of 1.5 GiB ({path.stat().st_size:,} bytes)", run)


@pytest.mark.parametrize(
    ("name", "make", "size"),
    [
        ("[{},...] 64 KiB", bracket_bomb, 64 << 10),
        ("[{},...] 64 MiB", bracket_bomb, 64 << 20),
        ("zeros 500 KiB", zero_bomb, 500 << 10),
        ("zeros 500 MiB", zero_bomb, 500 << 20),
    ],
)
def test_gzip_bombs(tmp_path: Path, name: str, make: object, size: int) -> None:
    """gzip bombs: a record under the limit is read; over it, refused before parsing."""
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(make(size))  # type: ignore[operator]
    run = run_cli(tmp_path, "normalize", str(path))
    assert run.code == 0
    if size > 1 << 20:
        (letter,) = stderr_letters(run)
        assert letter["reason"] == "too_large"
    _report(f"gzip bomb {name} ({path.stat().st_size:,} bytes)", run)


def test_replay_of_five_bombs(tmp_path: Path) -> None:
    """Five bombs of 400 MiB inflated in one folder, plus a good file: one at a time."""
    for n in range(5):
        (tmp_path / f"bomb{n}.json.gz").write_bytes(bracket_bomb(400 << 20))
    (tmp_path / "good.jsonl").write_bytes(jsonl(10))
    run = run_cli(tmp_path, "replay", "--rules", "detections/rules", str(tmp_path))
    assert run.code == 0
    assert b"read/too_large" in run.stderr
    _report("replay of five 400 MiB gzip bombs", run)


def test_rule_files(tmp_path: Path) -> None:
    """A 49 MB rule file and one nested 5,000 deep: rejected, the good rule loads."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(RULE)
    (rules / "big.yml").write_text(big_rule(49 << 20))
    (rules / "deep.yml").write_text(deep_yaml(5_000))
    run = run_cli(tmp_path, "rules", "validate", str(rules))
    text = run.stdout.decode() + run.stderr.decode()
    assert "over the limit" in text and "nested too deeply" in text
    assert "1 rule(s) loaded" in text
    _report("rules validate of a 49 MB and a 5,000-deep rule file", run)


_STREAM = """\
import gc, sys, tracemalloc
import orjson
sys.path.insert(0, sys.argv[1])
from hostile_inputs import cloudtrail
from detector.app.ingest import Ingestor
from detector.app.pipeline import Pipeline
from detector.decode import DecodeLimits
from detector.detect import load_rules
from detector.models import Origin, RawRecord

# Five 256 KiB values make a 1.3 MB record: raise the record limit to let them in.
ingestor = Ingestor(limits=DecodeLimits(max_bytes=4 << 20))
pipeline = Pipeline(load_rules(["detections/rules"]), default=ingestor)
tracemalloc.start()
for n in range(3000):
    unique = f"{n:08d}" + "a" * (256 << 10)
    record = cloudtrail(
        n,
        eventName="Get" + unique,
        eventSource=unique + ".amazonaws.com",
        sourceIPAddress="::" + unique,
        userAgent=unique,
        eventTime="2025-03-01T10:00:00." + "1" * (256 << 10) + f"{n:08d}",
    )
    events, _ = pipeline.ingest([RawRecord(orjson.dumps(record), Origin(path="x"))])
    assert events
    pipeline.detect(events)
    del events
gc.collect()
print(tracemalloc.get_traced_memory()[0])
"""


def test_unique_256k_values_streamed(tmp_path: Path) -> None:
    """3,000 events of unique 256 KiB values through ingest and detection (the streaming
    path): the caches retain no megabytes (was 257 MB)."""
    run = run_python(tmp_path, _STREAM, str(Path(__file__).parent))
    assert run.code == 0, run.stderr.decode()[-2000:]
    retained = int(run.stdout.splitlines()[-1]) / (1 << 20)
    print(
        f"\nhostile-large retained after 3,000 events of unique 256 KiB values: {retained:.1f} MiB"
    )
    assert retained < 16
    _report("3,000 events of unique 256 KiB values", run)


def test_document_at_the_record_limit(tmp_path: Path) -> None:
    """A whole-file document just under the record limit is read and normalized."""
    records = []
    size = 0
    while size < (1 << 20) - 4096:
        records.append(cloudtrail(len(records)))
        size += len(orjson.dumps(records[-1])) + 1
    path = tmp_path / "delivery.json"
    path.write_bytes(orjson.dumps({"Records": records[:-1]}))
    run = run_cli(tmp_path, "normalize", str(path))
    assert len(run.stdout.splitlines()) == len(records) - 1
    _report(f"S3 delivery of {len(records) - 1:,} records under 1 MiB", run)
