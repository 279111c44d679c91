"""The engine's counts of held entries, kept up to date on every change, equal a count of
the groups themselves."""

from __future__ import annotations

from corr_helpers import T0, engine, match
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detector.detect.correlation import CorrelationEngine

#: Early-firing, closing (``lt``), deduplicating (``value_count``) and chained rules.
RULES = """
title: Burst of pulls
id: 0f000000-0000-4000-8000-000000000001
name: burst
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 30s
  condition: {gte: 3}
---
title: Repeated bursts
id: 0f000000-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules: [burst]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 2}
---
title: Few pulls
id: 0f000000-0000-4000-8000-000000000003
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 20s
  condition: {lt: 2}
---
title: Many images
id: 0f000000-0000-4000-8000-000000000004
correlation:
  type: value_count
  rules: [pull]
  group-by: [user.name]
  timespan: 40s
  condition: {gte: 3, field: container.image.name}
"""

#: (step: 0 pull, 1 watermark, 2 flush, 3 checkpoint and restore; time; user; image)
steps = st.lists(
    st.tuples(
        st.sampled_from([0, 0, 0, 0, 1, 2, 3]),
        st.floats(0, 200, allow_nan=False),
        st.integers(0, 5),
        st.integers(0, 4),
    ),
    max_size=60,
)


def _counted(eng: CorrelationEngine) -> dict[str, int]:
    return {rule: stats.entries for rule, stats in eng.stats.rules.items()}


def _held(eng: CorrelationEngine) -> dict[str, int]:
    """Entries of every group, counted now."""
    found = {spec.info.id: 0 for spec in eng.specs}
    for part in eng._parts.values():
        for ci, spec in enumerate(eng.specs):
            found[spec.info.id] += sum(len(e) for e in part.groups[ci].values())
    return found


@settings(max_examples=150, deadline=None)
@given(steps)
@example([(0, 1.0, user, 0) for user in range(5)])  # evictions
@example([(0, t, 0, t % 5) for t in range(8)] + [(1, 100.0, 0, 0)])  # truncation, expiry
def test_entry_counts_follow_every_change(script: list[tuple[int, float, int, int]]) -> None:
    """After any sequence of matches (in and out of order, too late, over the caps on
    groups and entries), watermark moves, flushes and restores from the changelog, the
    entries the stats report per rule equal those the groups hold."""
    eng, base = engine(RULES, allowed_lateness=10, max_groups_per_rule=3, max_entries_per_group=4)
    eng.track_changes(0)
    for step, t, user, image in script:
        if step == 0:
            ecs = {"user.name": f"u{user}", "container.image.name": f"i{image}"}
            eng.process(match(base["pull"], t, ecs))
        elif step == 1:
            eng.advance_watermark(T0 + t)
        elif step == 2:
            eng.flush()
        else:
            restored, _ = engine(
                RULES, allowed_lateness=10, max_groups_per_rule=3, max_entries_per_group=4
            )
            for rule, key, value in eng.changes(0, everything=True):
                restored.load_group(0, rule, key, value)
            restored.load_header(0, eng.header(0))
            restored.track_changes(0)
            eng = restored
        assert _counted(eng) == _held(eng)
