"""Memory follows the configuration, not the attacker: bombs are refused before they are
inflated or parsed, Avro containers are streamed under limits, caches are bounded in size."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import orjson
import pytest
from hostile_inputs import (
    REST_SCHEMA,
    avro_bytes,
    avro_container,
    avro_deflate_bomb,
    avro_empty_records,
    bracket_bomb,
    cloudtrail,
    run_cli,
    stderr_letters,
    zero_bomb,
)

from detector.app.ingest import Ingestor
from detector.decode import ContainerLimits, read_container
from detector.detect.values import memoized
from detector.errors import DecodeError
from detector.models import Origin, RawRecord

#: The CLI's own footprint is about 75 MiB; an input parsed or inflated whole (the
#: behaviour these tests guard against) costs several times the small sizes used here.
SMALL_RUN_MIB = 160


def test_avro_container_declaring_billions_of_records_is_refused() -> None:
    """118 bytes declaring 2^31 empty records: refused at the block header (was a list
    of 2^31 records and a MemoryError)."""
    data = avro_empty_records(2**31)
    assert len(data) < 200
    with pytest.raises(DecodeError) as info:
        next(read_container(data))
    assert info.value.reason == "too_large"
    # Under the record cap a block still cannot declare more records than bytes.
    with pytest.raises(DecodeError) as info:
        next(read_container(avro_empty_records(1000)))
    assert info.value.reason == "invalid_avro"


def test_avro_deflate_block_is_refused_past_its_limit() -> None:
    """A deflate block inflating past ``max_block_bytes`` is refused without being
    inflated whole (was inflated whole: 3.1 GB for a 1.5 GiB block)."""
    data = avro_deflate_bomb(8 << 20)
    with pytest.raises(DecodeError) as info:
        next(read_container(data, container=ContainerLimits(max_block_bytes=1 << 20)))
    assert info.value.reason == "too_large"
    assert "inflates past" in info.value.detail


def test_avro_container_records_come_one_by_one(tmp_path: Path) -> None:
    """``detector normalize --format auto`` streams a container from the file: the records
    before a corrupt block are normalized, then one dead letter says where it stopped."""
    good = avro_bytes(orjson.dumps(cloudtrail(1))) + avro_bytes(orjson.dumps(cloudtrail(2)))
    data = avro_container(REST_SCHEMA, [(2, good), (1, b"\xff")], "null")
    path = tmp_path / "trail.avro"
    path.write_bytes(data)
    run = run_cli(tmp_path, "normalize", "--format", "auto", str(path))
    assert run.code == 0, run.stderr
    assert len(run.stdout.splitlines()) == 2
    (letter,) = stderr_letters(run)
    assert letter["stage"] == "decode" and "after record 2" in letter["detail"]


@pytest.mark.parametrize(
    ("bomb", "reason"),
    [(bracket_bomb, "one JSON document"), (zero_bomb, "one JSON document")],
    ids=["brackets", "zeros"],
)
def test_gzip_bomb_is_refused_before_parsing(tmp_path: Path, bomb: object, reason: str) -> None:
    """A small ``.gz`` inflating to 24 MiB of ``[{},...]`` or zeros is refused as
    ``too_large`` after one record limit of bytes, never inflated or parsed whole."""
    path = tmp_path / "bomb.json.gz"
    path.write_bytes(bomb(24 << 20))  # type: ignore[operator]
    run = run_cli(tmp_path, "normalize", str(path))
    assert run.code == 0
    (letter,) = stderr_letters(run)
    assert (letter["stage"], letter["reason"]) == ("read", "too_large")
    assert reason in letter["detail"]
    assert run.peak_mib < SMALL_RUN_MIB


def test_replay_of_several_bombs_holds_one_at_a_time(tmp_path: Path) -> None:
    """Five bombs in a folder: five dead letters, and the bytes of one file at a time at
    most (all were held at once)."""
    for n in range(5):
        (tmp_path / f"bomb{n}.json.gz").write_bytes(bracket_bomb(8 << 20))
    (tmp_path / "good.jsonl").write_bytes(orjson.dumps(cloudtrail(1)) + b"\n")
    run = run_cli(tmp_path, "replay", "--rules", "detections/rules", str(tmp_path))
    assert run.code == 0, run.stderr
    assert b"dead letters: read/too_large" in run.stderr
    assert run.peak_mib < SMALL_RUN_MIB


def _retained(work: object) -> int:
    """Bytes still allocated after ``work()`` ran and its garbage was collected."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    work()  # type: ignore[operator]
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before


def test_unique_huge_values_are_not_cached() -> None:
    """Unique 64 KiB values through normalization (event name, source, address, time) and
    a memoized rule test leave no megabytes behind (caches were bounded by count only)."""
    big = 64 << 10
    ingestor = Ingestor()
    test = memoized(lambda v: v.endswith("x"))

    def work() -> None:
        for n in range(200):
            unique = f"{n:08d}" + "a" * big
            record = cloudtrail(
                n,
                eventName="Get" + unique,
                eventSource=unique + ".amazonaws.com",
                sourceIPAddress="::" + unique,
                eventTime="2025-03-01T10:00:00." + "1" * big + f"{n:08d}",
            )
            events, _ = ingestor.ingest(RawRecord(orjson.dumps(record), Origin(path="x")))
            assert events
            test(unique)

    assert _retained(work) < 2 << 20  # 200 values of 64 KiB would be 12 MiB per cache
