"""Correlate state at scale on the real local broker: per-key changelog vs whole state.

Run from the repository root with the local services up (``scripts/services up``):
``.venv/bin/python bench/bench_state.py [--keys 1000000] [--changes 1000] [--batches 20]``.

For each kind of keyed state (first-seen terms; open ``event_count`` windows, one entry
each) it builds one matches partition holding ``--keys`` active keys, writes them all to a
fresh compacted state topic, then measures in the same run:

- the per-batch checkpoint of the per-key changelog when a batch changes ``--changes``
  keys (collect the changed keys' records + meta record, one transaction, committed),
  median over ``--batches`` batches;
- the whole-state checkpoint of earlier versions (serialize + zlib + send one record,
  acknowledged), median of 3, or "over the limit" when it exceeds 32 MiB;
- the restore after a rebalance: read the partition's records (committed only) and
  rebuild the state, checked to hold every key.

It prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from bench_correlation import RULES
from bench_pipeline import services

from detector.detect import load_rules
from detector.detect.correlation.routing import MatchRouter
from detector.detect.correlation.spec import rule_info
from detector.models import Event, LogSource, Match, RuleInfo
from detector.state import KafkaChangelogStore, TopicSpec, ensure_topics
from detector.state.changelog import DEFAULT_MAX_BYTES
from detector.state.partition import SEP, EngineFactory, PartitionState, Record

T0 = 1_700_000_000.0
BASE = "bench-correlate/bench-matches/0"
#: Records per transaction while the initial state is written (not a measured figure).
FILL_CHUNK = 100_000


def factory() -> tuple[EngineFactory, dict[str, RuleInfo]]:
    """Engines of the correlation bench's rules, and the rule facts by title."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yml"
        path.write_text(RULES)
        ruleset = load_rules([path])
    router = MatchRouter(
        [r.sigma for r in ruleset.rules], ruleset.correlations, rule_ids=dict(ruleset.names)
    )
    infos = {r.sigma.title: rule_info(r.sigma) for r in ruleset.rules}
    return EngineFactory(ruleset, router, max_groups_per_rule=10_000_000), infos


def feeder(
    kind: str, state: PartitionState, infos: dict[str, RuleInfo]
) -> Callable[[int, float], None]:
    """A function applying one pull of user ``i`` at event time ``t`` to the state."""
    if kind == "first_seen":
        info = infos["Pull from a new address"]

        def feed(i: int, t: float) -> None:
            ecs = {"user": {"name": f"user-{i:07d}"}, "source": {"ip": f"10.{i % 250}.0.1"}}
            event = Event(f"e{i}-{t}", t, "registry", LogSource("ecs", "ecs"), ecs, {})
            state.first_seen.process(Match(info, event))

        return feed
    info = infos["Image pull"]
    (unit,) = [
        u
        for u in state.units.values()
        if len(u.specs) == 1 and u.specs[0].info.title == "Many pulls"
    ]

    def feed_window(i: int, t: float) -> None:
        ecs = {"user": {"name": f"user-{i:07d}"}, "registry": {"operation": "pull"}}
        event = Event(f"e{i}-{t}", t, "registry", LogSource("ecs", "ecs"), ecs, {})
        unit.process(Match(info, event))

    return feed_window


def build(kind: str, keys: int) -> tuple[PartitionState, Callable[[int, float], None]]:
    """A partition holding ``keys`` keys of ``kind``, all within one minute of event time."""
    made, infos = factory()
    state = PartitionState(0, made)
    feed = feeder(kind, state, infos)
    for i in range(keys):
        feed(i, T0 + 60.0 * i / keys)
    state.offset = keys
    return state, feed


async def topic(bootstrap: str) -> KafkaChangelogStore:
    """A fresh compacted one-partition state topic and a store on it."""
    name = f"bench-state-{uuid.uuid4().hex[:8]}"
    configs = {"cleanup.policy": "compact", "max.message.bytes": str(DEFAULT_MAX_BYTES)}
    await ensure_topics(bootstrap, [TopicSpec(name, 1, 1, configs)])
    store = KafkaChangelogStore(bootstrap, name, timeout_seconds=600)
    await store.start()
    return store


async def fill(store: KafkaChangelogStore, records: list[Record]) -> None:
    """Write every record, in chunks of whole transactions (meta record last)."""
    for start in range(0, len(records), FILL_CHUNK):
        await store.write({0: records[start : start + FILL_CHUNK]})


async def whole_state(bootstrap: str, store: KafkaChangelogStore, state: PartitionState) -> str:
    """Median time of the old checkpoint: serialize, compress, send one record (acked)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=DEFAULT_MAX_BYTES,
    )
    await producer.start()
    times: list[float] = []
    size = 0
    try:
        for _ in range(3):
            started = time.perf_counter()
            data = state.checkpoint().to_bytes()
            size = len(data)
            if size > DEFAULT_MAX_BYTES:
                encode = time.perf_counter() - started
                return f"over 32 MiB ({size / 2**20:.0f} MiB; encoding alone {encode:.2f} s)"
            await producer.send_and_wait(store.topic, data, key=b"whole", partition=0)
            times.append(time.perf_counter() - started)
    finally:
        await producer.stop()
    return f"{statistics.median(times) * 1000:,.0f} ms ({size / 2**20:.1f} MiB)"


async def run(kind: str, bootstrap: str, keys: int, changes: int, batches: int) -> list[str]:
    """One row of the table for ``kind``."""
    started = time.perf_counter()
    state, feed = build(kind, keys)
    built = time.perf_counter() - started
    store = await topic(bootstrap)
    try:
        state.rewrite = True
        started = time.perf_counter()
        await fill(store, state.changelog(BASE))
        filled = time.perf_counter() - started

        rng = random.Random(7)
        times: list[float] = []
        sizes: list[int] = []
        for b in range(batches):
            t = T0 + 60.0 + b * 0.1
            for i in rng.sample(range(keys), changes):
                feed(i, t)
            state.offset = (state.offset or 0) + changes
            begun = time.perf_counter()
            records = state.changelog(BASE)
            await store.write({0: records})
            times.append(time.perf_counter() - begun)
            sizes.append(len(records))
        old = await whole_state(bootstrap, store, state)

        restored = PartitionState(0, factory()[0])
        base = BASE.encode()

        def load(key: bytes, value: bytes | None) -> None:
            head, sep, tail = key.partition(SEP)
            if head == base:
                restored.load_record(sep + tail, value)

        started = time.perf_counter()
        count = await store.replay([0], load)
        assert restored.finish_restore(time.time())
        restore = time.perf_counter() - started
        held = sum(s.active_groups for s in restored.stats())
        assert held == keys, f"restored {held} keys of {keys}"
    finally:
        await store.close()
    return [
        kind,
        f"{keys:,}",
        f"{statistics.median(times) * 1000:,.1f} ms ({statistics.median(sizes):,.0f} records)",
        old,
        f"{restore:,.1f} s ({count:,} records, {count / restore:,.0f}/s)",
        f"{built:,.1f} s / {filled:,.1f} s",
    ]


async def main() -> None:
    """Run the bench for each kind and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--kinds", default="first_seen,event_count")
    args = parser.parse_args()
    bootstrap = services()[0]
    rows = [
        await run(kind, bootstrap, args.keys, args.changes, args.batches)
        for kind in args.kinds.split(",")
    ]
    head = [
        "state",
        "keys",
        f"per-key checkpoint, {args.changes:,} keys changed (median)",
        "whole-state checkpoint (median of 3)",
        "restore after rebalance",
        "build / first write",
    ]
    widths = [max(len(r[c]) for r in [head, *rows]) for c in range(len(head))]
    for row in [head, ["-" * w for w in widths], *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    asyncio.run(main())
