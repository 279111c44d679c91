"""Watermark, late events, expiry, bounded state and partitions of the correlation engine."""

from __future__ import annotations

from corr_helpers import T0, engine, match

RULE_ID = "0c000000-0000-4000-8000-000000000001"
COUNT = f"""
title: Pulls
id: {RULE_ID}
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 30s
  condition: {{gte: 2}}
"""


def test_out_of_order_match_completes_a_window_ending_at_a_newer_match() -> None:
    """A match arriving after a newer one joins the windows it belongs to: here the one
    ending at the newer match."""
    eng, base = engine(COUNT.replace("gte: 2", "gte: 3"), allowed_lateness=60)
    pull = base["pull"]
    eng.process(match(pull, 100, {"user.name": "u"}))
    eng.process(match(pull, 110, {"user.name": "u"}))
    alerts = eng.process(match(pull, 105, {"user.name": "u"}))
    assert len(alerts) == 1
    assert alerts[0].window_start is not None and alerts[0].window_start.timestamp() == T0 + 100
    assert eng.stats.late_events == 0  # out of order but above the watermark


def test_late_match_below_watermark_is_counted_into_open_windows() -> None:
    """Below the watermark but within the timespan: counted as late, still correlated."""
    eng, base = engine(COUNT, allowed_lateness=10)
    pull = base["pull"]
    eng.process(match(pull, 100, {"user.name": "u"}))  # watermark 90, horizon 60
    alerts = eng.process(match(pull, 85, {"user.name": "u"}))
    assert len(alerts) == 1
    stats = eng.stats
    assert stats.late_events == 1 and stats.too_late_events == 0


def test_too_late_match_is_counted_and_reported_not_correlated() -> None:
    """Older than watermark - timespan: every window it could join is closed; it is
    counted and its identity is kept for the caller's log."""
    eng, base = engine(COUNT, allowed_lateness=10)
    pull = base["pull"]
    eng.process(match(pull, 100, {"user.name": "u"}))  # horizon 60
    assert eng.process(match(pull, 59.9, {"user.name": "u"}, event_id="old")) == []
    stats = eng.stats
    assert stats.too_late_events == 1
    assert stats.too_late_samples == ((RULE_ID, "old", T0 + 59.9),)
    # at the horizon itself the match is only late
    assert len(eng.process(match(pull, 60, {"user.name": "u"}))) == 0
    assert eng.stats.late_events == 1


def test_watermark_is_max_event_time_minus_lateness_per_partition() -> None:
    """Each partition has its own watermark; non-matching events advance it too."""
    eng, _ = engine(COUNT, allowed_lateness=5)
    eng.advance_watermark(T0 + 50, partition=0)
    eng.advance_watermark(T0 + 20, partition=0)  # older: no effect
    eng.advance_watermark(T0 + 500, partition=1)
    assert eng.stats.watermarks == {0: T0 + 45, 1: T0 + 495}


def test_groups_expire_once_their_newest_match_leaves_the_timespan() -> None:
    """State is cleaned when the watermark passes newest + timespan."""
    eng, base = engine(COUNT, allowed_lateness=10)
    eng.process(match(base["pull"], 0, {"user.name": "u"}))
    eng.advance_watermark(T0 + 40)  # watermark 30, horizon 0: newest (0) still kept
    assert eng.stats.active_groups == 1
    eng.advance_watermark(T0 + 40.5)
    stats = eng.stats.rules[RULE_ID]
    assert stats.active_groups == 0 and stats.expired_groups == 1


def test_partitions_do_not_share_groups() -> None:
    """Matches of the same key in different partitions are separate state."""
    eng, base = engine(COUNT, allowed_lateness=0)
    assert eng.process(match(base["pull"], 0, {"user.name": "u"}), partition=0) == []
    assert eng.process(match(base["pull"], 1, {"user.name": "u"}), partition=1) == []
    assert eng.stats.active_groups == 2


def test_cap_evicts_least_recently_updated_group_and_counts_it() -> None:
    """With room for two groups, a third evicts the one updated longest ago."""
    eng, base = engine(COUNT.replace("gte: 2", "gte: 3"), max_groups_per_rule=2)
    pull = base["pull"]
    for t, user in [(0, "alice"), (1, "bob"), (2, "alice"), (3, "carol")]:
        eng.process(match(pull, t, {"user.name": user}))
    stats = eng.stats.rules[RULE_ID]
    assert stats.evictions == 1 and stats.active_groups == 2
    # alice kept both matches: one more fires
    assert len(eng.process(match(pull, 4, {"user.name": "alice"}))) == 1
    # bob's first match was forgotten: three new ones are needed
    assert eng.process(match(pull, 5, {"user.name": "bob"})) == []
    assert eng.process(match(pull, 6, {"user.name": "bob"})) == []
    assert len(eng.process(match(pull, 7, {"user.name": "bob"}))) == 1


def test_entry_cap_bounds_a_group_and_counts_dropped_entries() -> None:
    """A group never keeps more than max_entries_per_group entries."""
    yaml = COUNT.replace("gte: 2", "gte: 100").replace("30s", "1h")
    eng, base = engine(yaml, max_entries_per_group=4)
    for t in range(10):
        eng.process(match(base["pull"], t, {"user.name": "u"}))
    stats = eng.stats.rules[RULE_ID]
    assert stats.entries == 4 and stats.truncated_entries == 6


def test_value_count_keeps_one_entry_per_distinct_value() -> None:
    """Repeats of a value replace the older entry, so state is bounded by distinct values."""
    yaml = f"""
title: Addresses
id: {RULE_ID}
correlation:
  type: value_count
  rules: [pull]
  group-by: [user.name]
  timespan: 1h
  condition: {{field: source.ip, gte: 50}}
"""
    eng, base = engine(yaml)
    for t in range(100):
        eng.process(match(base["pull"], t, {"user.name": "u", "source.ip": f"10.0.0.{t % 3}"}))
    assert eng.stats.rules[RULE_ID].entries == 3
