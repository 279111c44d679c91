"""Snapshot/restore: an engine restored mid-stream behaves exactly like an uninterrupted one."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from corr_helpers import engine, match
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.detect.correlation import CorrelationEngine
from detector.models import Alert

RULES = """
title: Burst
id: 0e000000-0000-4000-8000-000000000001
name: burst
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 30s
  condition: {gte: 3}
---
title: Bursts
id: 0e000000-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules: [burst]
  group-by: [user.name]
  timespan: 10m
  condition: {gte: 2}
---
title: Few
id: 0e000000-0000-4000-8000-000000000003
correlation:
  type: event_count
  rules: [token]
  group-by: [user.name]
  timespan: 20s
  condition: {lt: 2}
---
title: Avg
id: 0e000000-0000-4000-8000-000000000004
correlation:
  type: value_avg
  rules: [pull]
  group-by: [user.name]
  timespan: 1m
  condition: {field: size, gt: 60}
---
title: Pair
id: 0e000000-0000-4000-8000-000000000005
correlation:
  type: temporal_ordered
  rules: [token, pull]
  group-by: [user.name]
  timespan: 40s
"""

Step = tuple[str, float, str, int, int]  # rule name, time, user, size, partition


def _run(
    eng: CorrelationEngine, base: dict[str, Any], steps: list[Step], start: int = 0
) -> list[Alert]:
    out: list[Alert] = []
    for i, (rule, t, user, size, part) in enumerate(steps, start):
        m = match(base[rule], t, {"user.name": user, "size": size}, event_id=f"e{i}-{t}")
        out += eng.process(m, partition=part)
    return out


def _dump(alerts: list[Alert]) -> list[dict[str, Any]]:
    return [a.model_dump() for a in alerts]


steps_strategy = st.lists(
    st.tuples(
        st.sampled_from(["pull", "token"]),
        st.floats(0, 300).map(lambda x: round(x, 1)),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 100),
        st.integers(0, 1),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(steps=steps_strategy, cut=st.integers(0, 60))
def test_restore_mid_stream_gives_the_same_alerts(steps: list[Step], cut: int) -> None:
    """Process a prefix, snapshot, restore into a new engine, process the rest: the alerts
    (ids, evidence, windows) and the counters equal those of one uninterrupted engine,
    for out-of-order input over two partitions."""
    steps = sorted(steps, key=lambda s: s[1] + (s[3] % 7) * 3)  # roughly ordered
    cut = min(cut, len(steps))
    whole, base = engine(RULES, allowed_lateness=15, max_groups_per_rule=2)
    expected = _run(whole, base, steps) + whole.flush()

    first, base1 = engine(RULES, allowed_lateness=15, max_groups_per_rule=2)
    got = _run(first, base1, steps[:cut])
    data = first.snapshot()
    second, base2 = engine(RULES, allowed_lateness=15, max_groups_per_rule=2)
    second.restore(data)
    got += _run(second, base2, steps[cut:], cut) + second.flush()
    assert _dump(got) == _dump(expected)
    assert second.stats.rules == whole.stats.rules


def test_snapshot_is_plain_json_per_partition() -> None:
    """The snapshot is JSON; a partition's snapshot restores only that partition."""
    eng, base = engine(RULES)
    eng.process(match(base["pull"], 0, {"user.name": "a"}), partition=0)
    eng.process(match(base["pull"], 0, {"user.name": "b"}), partition=3)
    doc = orjson.loads(eng.snapshot(partition=3))
    assert [p["partition"] for p in doc["parts"]] == [3]
    other, _ = engine(RULES)
    other.restore(eng.snapshot(partition=3))
    assert set(other.stats.watermarks) == {3}
    assert other.stats.active_groups == 2  # burst and avg groups of user b


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b'{"version": 99, "kind": "correlation", "parts": []}',
        b'{"version": 1, "kind": "correlation", "parts": [{"partition": 0}]}',
        b'{"version": 1, "kind": "correlation", "parts": [{"partition": 0, "max_time": 1,'
        b' "rules": {"0e000000-0000-4000-8000-000000000001": {"counters": {},'
        b' "groups": [[["a"], [[1.0, 7, null, {}]]]]}}}]}',
    ],
)
def test_restore_rejects_malformed_snapshots(data: bytes) -> None:
    """Garbage, other versions and entries that do not fit the rules raise ValueError."""
    eng, _ = engine(RULES)
    with pytest.raises(ValueError, match="invalid correlation snapshot"):
        eng.restore(data)
