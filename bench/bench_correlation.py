"""Correlation and first-seen throughput, and state memory per active group key.

Run: ``.venv/bin/python bench/bench_correlation.py [--groups 50000] [--matches 500000]``

Prints matches/s for an ``event_count`` and a ``value_count`` rule over many groups and
for a first-seen rule, then the state memory per active group key measured with
tracemalloc (target <= 1 KiB). Events are built before measuring, so the figures are the
engine's own cost; the ECS documents kept as alert evidence are shared with the events
and reported separately as the snapshot size per group.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable, Sequence

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from detector.detect.correlation import CorrelationEngine, FirstSeenEngine
from detector.detect.correlation.spec import rule_info
from detector.models import Alert, Event, LogSource, Match

T0 = 1_700_000_000.0
RULES = """
title: Image pull
id: 1a000000-0000-4000-8000-000000000001
name: pull
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
---
title: Pull from a new address
id: 1a000000-0000-4000-8000-000000000002
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
first_seen: {fields: [source.ip], group-by: [user.name], timespan: 30d}
---
title: Many pulls
id: 1a000000-0000-4000-8000-000000000003
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 10}
---
title: Pulls from many addresses
id: 1a000000-0000-4000-8000-000000000004
correlation:
  type: value_count
  rules: [pull]
  group-by: [user.name]
  timespan: 10m
  condition: {field: source.ip, gte: 5}
"""


def load() -> tuple[SigmaRule, SigmaRule, list[SigmaCorrelationRule]]:
    """The pull rule, the first-seen rule and the two correlations."""
    coll = SigmaCollection.from_yaml(RULES)
    coll.resolve_rule_references()
    base = [r for r in coll.rules if isinstance(r, SigmaRule)]
    corr = [r for r in coll.rules if isinstance(r, SigmaCorrelationRule)]
    return base[0], base[1], corr


def matches(
    rule: SigmaRule, groups: int, count: int, *, seed: int = 7, rate: float = 100.0
) -> list[Match]:
    """``count`` pulls by ``groups`` users from 8 addresses each, ``rate`` per second
    of event time, slightly out of order (jitter below the allowed lateness)."""
    rng = random.Random(seed)
    info = rule_info(rule)
    users = [f"user-{i:06d}" for i in range(groups)]
    out = []
    for i in range(count):
        u = rng.randrange(groups)
        user = users[u]
        t = T0 + i / rate + rng.random() * 5
        ip = f"10.{u % 250}.{rng.randrange(2)}.{rng.randrange(4)}"  # 8 addresses per user
        ecs = {
            "@timestamp": t,
            "event": {"id": f"e{i}", "action": "pull"},
            "user": {"name": user},
            "source": {"ip": ip},
            "registry": {"operation": "pull"},
        }
        event = Event(f"e{i}", t, "registry", LogSource("ecs", "ecs"), ecs, {})
        out.append(Match(rule=info, event=event))
    return out


def throughput(label: str, process: Callable[[Match], list[Alert]], ms: Sequence[Match]) -> None:
    """Feed every match and print matches/s and the alert count."""
    gc.collect()
    start = time.perf_counter()
    alerts = 0
    for m in ms:
        alerts += len(process(m))
    elapsed = time.perf_counter() - start
    print(f"{label:<38} {len(ms) / elapsed:>12,.0f} matches/s   alerts={alerts:,}")


def memory(label: str, engine: CorrelationEngine | FirstSeenEngine, ms: Sequence[Match]) -> None:
    """State bytes per active group key, traced while feeding pre-built matches."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for m in ms:
        engine.process(m)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    stats = engine.stats
    groups = max(stats.active_groups, 1)
    snap = len(engine.snapshot())
    print(
        f"{label:<38} {(after - before) / groups:>8,.0f} B/group key   "
        f"groups={stats.active_groups:,} entries={stats.entries:,} "
        f"snapshot={snap / groups:,.0f} B/group"
    )


def restored(
    label: str, make: Callable[[], CorrelationEngine | FirstSeenEngine], ms: Sequence[Match]
) -> None:
    """State bytes per group key of an engine restored from the changelog records of the
    state ``ms`` builds, traced while loading them: unlike :func:`memory`, where the
    matches' documents exist before, this counts the evidence documents too."""
    live = make()
    for m in ms:
        live.process(m)
    records = list(live.changes(0, everything=True))
    header = live.header(0)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = make()
    for rule_id, key, value in records:
        engine.load_group(0, rule_id, key, value)
    engine.load_header(0, header)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    groups = max(engine.stats.active_groups, 1)
    print(f"{label:<38} {(after - before) / groups:>8,.0f} B/group key   groups={groups:,}")


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=50_000)
    parser.add_argument("--matches", type=int, default=500_000)
    args = parser.parse_args()
    pull, first_seen, corr = load()
    ms = matches(pull, args.groups, args.matches, rate=1000.0)
    fs_ms = [Match(rule_info(first_seen), m.event) for m in ms]
    print(f"{args.matches:,} matches over {args.groups:,} group keys (one core)")

    for rule in corr:
        eng = CorrelationEngine([rule], allowed_lateness=60)
        throughput(f"{rule.type.name.lower()} ({rule.title})", eng.process, ms)
    both = CorrelationEngine(corr, allowed_lateness=60)
    throughput("both correlations in one engine", both.process, ms)
    fse = FirstSeenEngine([first_seen], allowed_lateness=60)
    throughput("first_seen (new source.ip per user)", fse.process, fs_ms)

    # Memory: 1.5 matches per group key on average within one minute of event time, so
    # no window expires and (thresholds 10 and 5) nearly every key stays active.
    mem = matches(pull, args.groups, args.groups * 3 // 2, seed=11, rate=args.groups)
    mem.sort(key=lambda m: m.event.timestamp)
    for rule in corr:
        memory(f"{rule.type.name.lower()} state", CorrelationEngine([rule]), mem)
    fs_mem = [Match(rule_info(first_seen), m.event) for m in mem]
    memory("first_seen state", FirstSeenEngine([first_seen]), fs_mem)
    for rule in corr:
        restored(
            f"{rule.type.name.lower()} restored, evidence incl.",
            lambda rule=rule: CorrelationEngine([rule]),
            mem,
        )
    restored("first_seen restored", lambda: FirstSeenEngine([first_seen]), fs_mem)


if __name__ == "__main__":
    main()
