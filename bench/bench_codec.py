"""CPU and bytes per routed match on the matches topic: this codec against an older one.

Run from the repository root (no services needed):
``.venv/bin/python bench/bench_codec.py [--events 50000] [--rounds 5] [--baseline REV]``.

It runs the detect stage's code in process over ``--events`` CloudTrail records of
``bench/bench_pipeline.py``'s workload (default rule pack), groups each batch's routed
matches by matches partition as the detect stage does, then measures, alternating
rounds in the same process:

- encode: the batch records of every partition (the detect stage's cost);
- decode: each record back into routed matches (the correlate stage's cost);
- the bytes of the records;

for this tree's codec and for ``detector/models/codec.py`` at ``--baseline`` (a git
revision, default ``a463a13``: the zlib version 3 records), loaded from git into this
process. It checks that both decode to the same matches and that every baseline record
still decodes here, measures apply (``PartitionState.read``) once on this codec's
records, and compares the compressors (zlib and zstd at level 1, and lz4 when installed)
on the records' uncompressed bodies. Figures are medians of the rounds, in CPU time
(``time.process_time``) per routed match.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zstandard
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import BATCH, PARTITIONS, detect_setup, workload

from detector.models import (
    MatchBatch,
    RoutedMatch,
    Watermark,
    decode_matches_record,
    encode_batch,
)
from detector.models.compression import inflate
from detector.models.serialized import SerializedDocument
from detector.sinks.matches import partition_for
from detector.state.partition import EngineFactory, PartitionState

ROOT = Path(__file__).resolve().parent.parent
console = Console()
#: One batch: each partition's routed matches and the member's heartbeat.
Batch = tuple[dict[int, list[RoutedMatch]], Watermark]


def baseline(revision: str) -> types.ModuleType:
    """``detector/models/codec.py`` at ``revision``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:detector/models/codec.py"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    module = types.ModuleType("baseline_codec")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"codec.py at {revision}", "exec"), module.__dict__)
    return module


def batches(events: int) -> tuple[Any, Any, list[Batch]]:
    """The ruleset, router and batches of routed matches of ``events`` records."""
    ruleset, pipeline, records = detect_setup(workload(events))
    out: list[Batch] = []
    progress: dict[str, tuple[float | None, bool]] = {}
    for i in range(0, len(records), BATCH):
        result = pipeline.process(records[i : i + BATCH])
        for source, newest in result.progress.items():
            progress[source] = (newest, False)
        grouped: dict[int, list[RoutedMatch]] = {}
        for routed in result.matches:
            grouped.setdefault(partition_for(routed, PARTITIONS), []).append(routed)
        out.append((grouped, Watermark(0.0, "bench", dict(progress), {})))
    return ruleset, pipeline.router, out


def encode(batches: list[Batch], encoder: Callable[..., list[bytes]]) -> tuple[float, list[bytes]]:
    """CPU seconds to encode every batch, and the records in order."""
    values: list[bytes] = []
    clock = time.process_time
    spent = 0.0
    for grouped, mark in batches:
        started = clock()
        documents: dict[int, Any] = {}
        for routed in grouped.values():
            values += encoder(routed, mark, documents=documents)
        spent += clock() - started
    return spent, values


def decode(values: list[bytes], decoder: Callable[[bytes], Any]) -> float:
    """CPU seconds to decode ``values`` one at a time (nothing kept, as the stage does)."""
    clock = time.process_time
    spent = 0.0
    for value in values:
        started = clock()
        decoder(value)
        spent += clock() - started
    return spent


def facts(routed: Any) -> tuple[Any, ...]:
    """What a decoded match carries, comparable across codec versions."""
    event = routed.match.event

    def doc(value: Any) -> Any:
        if isinstance(value, SerializedDocument):
            return (value.data, dict(value.fields))
        return value

    origin = event.origin
    return (
        routed.target,
        routed.key,
        routed.seq,
        routed.match.rule.id,
        tuple(routed.match.selections),
        event[:4],
        doc(event.ecs),
        doc(event.raw),
        (origin.topic, origin.partition, origin.offset, origin.path, origin.line),
    )


def apply(ruleset: Any, router: Any, batches: list[Batch], matches: int) -> float:
    """CPU seconds per match to apply this codec's records, one state per partition."""
    factory = EngineFactory(ruleset, router)
    logs: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for grouped, mark in batches:
        documents: dict[int, Any] = {}
        for p, routed in grouped.items():
            logs[p] += encode_batch(routed, mark, documents=documents)
    clock = time.process_time
    spent = 0.0
    for p, log in logs.items():
        state = PartitionState(p, factory)
        for offset, value in enumerate(log):
            record = decode_matches_record(value)
            assert isinstance(record, MatchBatch)
            started = clock()
            state.read(offset, record, 0.0)
            state.release()
            spent += clock() - started
    return spent / matches


def compressors(values: list[bytes], matches: int, rounds: int) -> Table:
    """CPU per match and bytes per match of each compressor on the records' bodies."""
    bodies = [inflate(v[4:], 1 << 30) for v in values]
    zstd = zstandard.ZstdCompressor(level=1)
    unzstd = zstandard.ZstdDecompressor()
    codecs: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zlib level 1 (version 3)": (lambda b: zlib.compress(b, 1), zlib.decompress),
        "zstd level 1 (version 4)": (zstd.compress, unzstd.decompress),
    }
    try:
        import lz4.frame  # noqa: PLC0415  # not a dependency: measured when installed

        codecs["lz4 frame, level 0"] = (lz4.frame.compress, lz4.frame.decompress)
    except ImportError:
        pass
    table = Table(title="compressors on the same record bodies (per routed match)")
    for column in ("compressor", "compress µs", "decompress µs", "bytes"):
        table.add_column(column, justify="right" if column != "compressor" else "left")
    raw = sum(map(len, bodies))
    table.add_row("none", "0", "0", f"{raw / matches:,.0f}")
    clock = time.process_time
    for name, (pack, unpack) in codecs.items():
        packed: list[bytes] = []
        timings: list[tuple[float, float]] = []
        for _ in range(rounds):
            started = clock()
            packed = [pack(b) for b in bodies]
            middle = clock()
            back = [unpack(b) for b in packed]
            timings.append((middle - started, clock() - middle))
            assert back == bodies
        table.add_row(
            name,
            f"{statistics.median(t for t, _ in timings) / matches * 1e6:.2f}",
            f"{statistics.median(t for _, t in timings) / matches * 1e6:.2f}",
            f"{sum(map(len, packed)) / matches:,.0f}",
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", default="a463a13", help="git revision of the old codec")
    args = parser.parse_args()
    old = baseline(args.baseline)
    ruleset, router, work = batches(args.events)
    matches = sum(len(r) for grouped, _ in work for r in grouped.values())

    _, old_values = encode(work, old.encode_batch)
    _, new_values = encode(work, encode_batch)
    old_matches = [facts(m) for v in old_values for m in old.decode_matches_record(v).matches]
    new_matches = [facts(m) for v in new_values for m in decode_matches_record(v).matches]
    here = [facts(m) for v in old_values for m in decode_matches_record(v).matches]
    same = old_matches == new_matches == here

    figures: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    codecs = (
        ("old", old.encode_batch, old.decode_matches_record),
        ("new", encode_batch, decode_matches_record),
    )
    for _ in range(args.rounds):
        for name, encoder, decoder in codecs:
            spent, values = encode(work, encoder)
            figures[name].append((spent, decode(values, decoder)))
    us = 1e6 / matches
    enc = {k: statistics.median(e for e, _ in v) * us for k, v in figures.items()}
    dec = {k: statistics.median(d for _, d in v) * us for k, v in figures.items()}
    size = {
        "old": sum(map(len, old_values)) / matches,
        "new": sum(map(len, new_values)) / matches,
    }
    applied = apply(ruleset, router, work, matches) * 1e6

    table = Table(
        title=f"matches-topic codec: {args.events:,} events, {matches:,} routed matches "
        f"({matches / args.events:.2f} per event), {len(new_values):,} records; "
        f"median of {args.rounds} rounds, CPU per routed match"
    )
    for column in ("cost", f"old ({args.baseline})", "new", "new / old"):
        table.add_column(column, justify="left" if column == "cost" else "right")
    rows = [
        ("encode (detect stage), µs", enc["old"], enc["new"]),
        ("decode (correlate stage), µs", dec["old"], dec["new"]),
        ("encode + decode, µs", enc["old"] + dec["old"], enc["new"] + dec["new"]),
        ("bytes on the topic", size["old"], size["new"]),
    ]
    for name, before, after in rows:
        table.add_row(name, f"{before:,.1f}", f"{after:,.1f}", f"{after / before:.2f}")
    table.add_row("apply (correlate stage, this tree), µs", "", f"{applied:.1f}", "")
    console.print(table)
    console.print(compressors(new_values, matches, args.rounds))
    console.print(
        "decoded matches: new records, old records (old decoder and this one) "
        + ("[green]identical[/green]" if same else "[red]DIFFERENT[/red]")
    )
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
