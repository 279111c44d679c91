"""Per-key changelogs: an engine restored from the records of what each batch changed
(compacted: newest value per key, tombstones delete) holds the state it had, and goes on
exactly like an engine that never stopped."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
from corr_helpers import engine, match
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule
from test_correlation_snapshot import RULES, Step, _run, steps_strategy

from detector.detect.correlation import CorrelationEngine, FirstSeenEngine
from detector.models import Alert
from detector.models.serialized import SerializedDocument

FIRST_SEEN = """
title: Pull from a new address
id: 0f000000-0000-4000-8000-0000000000c1
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
first_seen: {fields: [source.ip], group-by: [user.name], timespan: 2m}
"""

Engine = CorrelationEngine | FirstSeenEngine
#: A compacted changelog: key -> value, in the order of each key's newest write.
Topic = dict[tuple[str, tuple[str, ...]], bytes]


def _compact(topic: Topic, eng: Engine, partition: int, everything: bool = False) -> int:
    """Append what changed to ``topic`` as compaction leaves it; returns the record count."""
    count = 0
    for rule_id, key, value in eng.changes(partition, everything=everything):
        count += 1
        topic.pop((rule_id, key), None)
        if value is not None:
            topic[(rule_id, key)] = value
    return count


def _restore(eng: Engine, partition: int, topic: Topic, header: dict[str, Any]) -> None:
    # the header travels through JSON like the meta record
    for (rule_id, key), value in topic.items():
        eng.load_group(partition, rule_id, key, value)
    eng.load_header(partition, orjson.loads(orjson.dumps(header)))


def _state(eng: Engine, partition: int) -> dict[str, Any]:
    """The partition's snapshot with groups as mappings (their order aside)."""
    (part,) = orjson.loads(eng.snapshot(partition))["parts"]
    for rule in part["rules"].values():
        for name in ("groups", "seen"):
            if name in rule:
                rule[name] = {tuple(k): v for k, v in rule[name]}
    return dict(part)


def _dump(alerts: list[Alert]) -> list[dict[str, Any]]:
    return [a.model_dump() for a in alerts]


@settings(max_examples=100, deadline=None)
@given(steps=steps_strategy, cuts=st.lists(st.integers(0, 60), max_size=6), crash=st.integers(0, 6))
def test_correlation_state_restored_from_batch_changes_equals_the_state_before(
    steps: list[Step], cuts: list[int], crash: int
) -> None:
    """Batches of matches (out of order, two partitions, evictions at a cap of 2 groups,
    windows closed and expired by later event times) each followed by a changelog of what
    they changed: after any batch, an engine restored from the compacted records and the
    header has the same groups, entries, counters and event time (evidence documents held
    serialized), and processing the rest gives the same alerts and counters as the engine
    that never stopped."""
    steps = sorted(steps, key=lambda s: s[1] + (s[3] % 7) * 3)
    bounds = sorted({0, len(steps), *(min(c, len(steps)) for c in cuts)})
    batches = list(itertools.pairwise(bounds))
    crash = min(crash, len(batches))
    whole, base = engine(RULES, allowed_lateness=15, max_groups_per_rule=2)
    for p in (0, 1):
        whole.track_changes(p)
    topics: dict[int, Topic] = {0: {}, 1: {}}
    got: list[Alert] = []
    for lo, hi in batches[:crash]:
        got += _run(whole, base, steps[lo:hi], lo)
        for p, topic in topics.items():
            _compact(topic, whole, p)
    restored, base2 = engine(RULES, allowed_lateness=15, max_groups_per_rule=2)
    for p, topic in topics.items():
        _restore(restored, p, topic, whole.header(p))
        assert _state(restored, p) == _state(whole, p)
        # evidence stays serialized after a restore, as live entries keep it
        held = [e for groups in restored._parts[p].groups for es in groups.values() for e in es]
        assert all(isinstance(e.doc, SerializedDocument) for e in held)
    rest = steps[bounds[crash] if crash < len(bounds) else len(steps) :]
    start = len(steps) - len(rest)
    expected = _run(whole, base, rest, start) + whole.flush()
    got_rest = _run(restored, base2, rest, start) + restored.flush()
    assert _dump(got_rest) == _dump(expected)
    assert restored.stats.rules == whole.stats.rules


def _first_seen() -> tuple[FirstSeenEngine, SigmaRule]:
    rule = SigmaCollection.from_yaml(FIRST_SEEN).rules[0]
    assert isinstance(rule, SigmaRule)
    return FirstSeenEngine([rule], allowed_lateness=10, max_keys_per_rule=4), rule


@settings(max_examples=100, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.tuples(
                st.floats(0, 20).map(lambda x: round(x, 1)),
                st.sampled_from(["a", "b", "c"]),
                st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
            ),
            max_size=12,
        ),
        max_size=8,
    )
)
def test_first_seen_terms_restored_from_batch_changes_equal_the_terms_before(
    batches: list[list[tuple[float, str, str]]],
) -> None:
    """Batches of candidate pulls moving event time forward (terms expire after 2m,
    at most 4 terms: evictions) each followed by a changelog: after every batch, an engine
    restored from the compacted records (tombstones for expired and evicted terms) and the
    header holds the same terms, times, counters and origin, and alerts the same on the
    next batch."""
    live, rule = _first_seen()
    live.track_changes(0)
    topic: Topic = {}
    clock = 0.0
    for i, batch in enumerate(batches):
        fresh, _ = _first_seen()
        if i:
            _restore(fresh, 0, topic, live.header(0))
        ms = [match(rule, clock + dt, {"user.name": u, "source.ip": ip}) for dt, u, ip in batch]
        expected = [a for m in ms for a in live.process(m)]
        if i:
            assert _dump([a for m in ms for a in fresh.process(m)]) == _dump(expected)
        _compact(topic, live, 0)
        restored, _ = _first_seen()
        _restore(restored, 0, topic, live.header(0))
        assert _state(restored, 0) == _state(live, 0)
        clock += 45.0


def test_changes_name_only_what_changed_and_everything_names_all_keys() -> None:
    """After a changelog, a batch touching one group yields one record; ``everything``
    yields every group (the rewrite after an older whole-state checkpoint); an untracked
    engine (replay) keeps no changes."""
    eng, base = engine(RULES, allowed_lateness=15)
    eng.track_changes(0)
    for user in ("a", "b", "c"):
        eng.process(match(base["pull"], 1.0, {"user.name": user, "size": 1}))
    assert _compact({}, eng, 0) == 9  # burst, avg and pair groups of three users
    eng.process(match(base["pull"], 2.0, {"user.name": "b", "size": 1}))
    assert [k for _, k, _ in eng.changes(0)] == [("b",)] * 3
    assert _compact({}, eng, 0, everything=True) == 9
    untracked, base = engine(RULES, allowed_lateness=15)
    untracked.process(match(base["pull"], 1.0, {"user.name": "a", "size": 1}))
    assert list(untracked.changes(0)) == []
