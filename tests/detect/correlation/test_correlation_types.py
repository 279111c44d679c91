"""Each Sigma correlation type, evaluated on event time, at the edges of its window."""

from __future__ import annotations

from corr_helpers import T0, engine, match

from detector.detect.correlation.alerting import key_id
from detector.models import alert_id

EVENT_COUNT = """
title: Many pulls
id: 0b000000-0000-4000-8000-000000000001
level: high
tags: [attack.t1078]
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 3}
"""


def test_event_count_fires_when_oldest_match_is_exactly_timespan_old() -> None:
    """A match exactly `timespan` before the newest is inside the window [t - span, t]."""
    eng, base = engine(EVENT_COUNT, allowed_lateness=0)
    pull = base["pull"]
    assert eng.process(match(pull, 0, {"user.name": "alice"})) == []
    assert eng.process(match(pull, 100, {"user.name": "alice"})) == []
    alerts = eng.process(match(pull, 300, {"user.name": "alice"}))
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.event_count == 3
    assert alert.group == {"user.name": "alice"}
    assert alert.window_start is not None and alert.window_start.timestamp() == T0
    assert alert.window_end is not None and alert.window_end.timestamp() == T0 + 300
    assert alert.rule.type == "event_count"
    assert alert.rule.level == "high"
    assert alert.rule.tags == ("attack.t1078",)
    assert "3 events" in alert.reason and "user.name=alice" in alert.reason
    assert ">= 3 in 5m" in alert.reason


def test_event_count_ignores_match_just_outside_the_window() -> None:
    """A match older than `timespan` (by a millisecond) no longer counts."""
    eng, base = engine(EVENT_COUNT, allowed_lateness=0)
    pull = base["pull"]
    eng.process(match(pull, 0, {"user.name": "alice"}))
    eng.process(match(pull, 100, {"user.name": "alice"}))
    assert eng.process(match(pull, 300.001, {"user.name": "alice"})) == []
    alerts = eng.process(match(pull, 310, {"user.name": "alice"}))
    assert [a.event_count for a in alerts] == [3]
    assert alerts[0].window_start is not None
    assert alerts[0].window_start.timestamp() == T0 + 100


def test_one_alert_per_window_firing_not_per_event_past_threshold() -> None:
    """Six quick matches with threshold 3 give two alerts: a firing consumes its window."""
    eng, base = engine(EVENT_COUNT, allowed_lateness=0)
    alerts = []
    for t in range(6):
        alerts += eng.process(match(base["pull"], t, {"user.name": "alice"}))
    assert [a.event_count for a in alerts] == [3, 3]
    assert [a.window_start.timestamp() - T0 for a in alerts if a.window_start] == [0, 3]
    assert len({a.id for a in alerts}) == 2


def test_alert_id_is_rule_group_and_window_start() -> None:
    """The id is alert_id(rule id, group key, window start): equal input, equal id."""
    ids = []
    for _ in range(2):
        eng, base = engine(EVENT_COUNT, allowed_lateness=0)
        for t in (0, 1, 2):
            ids += [a.id for a in eng.process(match(base["pull"], t, {"user.name": "bob"}))]
    expected = alert_id("0b000000-0000-4000-8000-000000000001", key_id(["bob"]), T0)
    assert ids == [expected, expected]


def test_groups_count_separately_and_missing_group_field_is_not_counted() -> None:
    """Matches of another user, or without user.name, do not help alice's window."""
    eng, base = engine(EVENT_COUNT, allowed_lateness=0)
    pull = base["pull"]
    out = eng.process(match(pull, 0, {"user.name": "alice"}))
    out += eng.process(match(pull, 1, {"user.name": "bob"}))
    out += eng.process(match(pull, 2, {}))
    out += eng.process(match(pull, 3, {"user.name": "alice"}))
    assert out == []
    stats = eng.stats.rules["0b000000-0000-4000-8000-000000000001"]
    assert stats.missing_fields == 1
    assert stats.active_groups == 2
    assert len(eng.process(match(pull, 4, {"user.name": "alice"}))) == 1


def test_evidence_is_the_contributing_ecs_documents_capped() -> None:
    """The alert carries the ECS documents of contributing events, at most max_evidence."""
    yaml = EVENT_COUNT.replace("gte: 3", "gte: 5")
    eng, base = engine(yaml, allowed_lateness=0, max_evidence=2)
    alerts = []
    for t in range(5):
        alerts += eng.process(match(base["pull"], t, {"user.name": "a"}, event_id=f"e{t}"))
    assert len(alerts) == 1
    assert alerts[0].event_count == 5
    assert alerts[0].event_ids == ["e0", "e1"]


VALUE_COUNT = """
title: Pulls from many addresses
id: 0b000000-0000-4000-8000-000000000002
correlation:
  type: value_count
  rules: [pull]
  group-by: [user.name]
  timespan: 10m
  condition: {field: source.ip, gte: 3}
"""


def test_value_count_counts_distinct_values_in_the_window() -> None:
    """Repeated addresses count once; the third distinct address fires."""
    eng, base = engine(VALUE_COUNT, allowed_lateness=0)
    pull = base["pull"]
    out = []
    for t, ip in [(0, "10.0.0.1"), (1, "10.0.0.1"), (2, "10.0.0.2"), (3, "10.0.0.2")]:
        out += eng.process(match(pull, t, {"user.name": "u", "source.ip": ip}))
    assert out == []
    out = eng.process(match(pull, 4, {"user.name": "u", "source.ip": "10.0.0.3"}))
    assert len(out) == 1
    assert "3 distinct source.ip" in out[0].reason


def test_value_count_window_edge() -> None:
    """A distinct value seen exactly 10m earlier counts; 10m and a bit earlier does not."""
    eng, base = engine(VALUE_COUNT, allowed_lateness=0)
    pull = base["pull"]
    eng.process(match(pull, 0, {"user.name": "u", "source.ip": "a"}))
    eng.process(match(pull, 300, {"user.name": "u", "source.ip": "b"}))
    assert len(eng.process(match(pull, 600, {"user.name": "u", "source.ip": "c"}))) == 1
    eng2, base2 = engine(VALUE_COUNT, allowed_lateness=0)
    pull2 = base2["pull"]
    eng2.process(match(pull2, 0, {"user.name": "u", "source.ip": "a"}))
    eng2.process(match(pull2, 300, {"user.name": "u", "source.ip": "b"}))
    assert eng2.process(match(pull2, 600.5, {"user.name": "u", "source.ip": "c"})) == []


VALUE_SUM = """
title: Large transfer
id: 0b000000-0000-4000-8000-000000000003
correlation:
  type: value_sum
  rules: [pull]
  group-by: [user.name]
  timespan: 1h
  condition: {field: http.response.bytes, gt: 100}
"""


def test_value_sum_fires_when_the_sum_exceeds_and_skips_non_numbers() -> None:
    """Numbers and numeric strings add up; a non-numeric value is not counted."""
    eng, base = engine(VALUE_SUM, allowed_lateness=0)
    pull = base["pull"]
    out = eng.process(match(pull, 0, {"user.name": "u", "http.response.bytes": 50}))
    out += eng.process(match(pull, 1, {"user.name": "u", "http.response.bytes": "lots"}))
    out += eng.process(match(pull, 2, {"user.name": "u", "http.response.bytes": "50"}))
    assert out == []  # 100 is not > 100
    out = eng.process(match(pull, 3, {"user.name": "u", "http.response.bytes": 1}))
    assert len(out) == 1
    assert "sum of http.response.bytes = 101" in out[0].reason
    assert eng.stats.rules["0b000000-0000-4000-8000-000000000003"].missing_fields == 1


VALUE_AVG = """
title: Big average pulls
id: 0b000000-0000-4000-8000-000000000004
correlation:
  type: value_avg
  rules: [pull]
  group-by: [user.name]
  timespan: 100s
  condition: {field: http.response.bytes, gt: 10}
"""


def test_value_avg_is_evaluated_on_arrival_over_the_window_ending_there() -> None:
    """The average of the window [t - span, t] is checked at each match."""
    eng, base = engine(VALUE_AVG, allowed_lateness=0)
    pull = base["pull"]
    assert eng.process(match(pull, 0, {"user.name": "u", "http.response.bytes": 5})) == []
    alerts = eng.process(match(pull, 100, {"user.name": "u", "http.response.bytes": 25}))
    assert [a.event_count for a in alerts] == [2]
    assert "average of http.response.bytes = 15" in alerts[0].reason


def test_value_avg_window_edge() -> None:
    """A value exactly `timespan` old still drags the average down; just older, it
    does not (threshold: average > 15)."""
    yaml = VALUE_AVG.replace("gt: 10", "gt: 15")
    for t, fired in ((100.0, False), (100.5, True)):
        eng, base = engine(yaml, allowed_lateness=0)
        pull = base["pull"]
        eng.process(match(pull, 0, {"user.name": "u", "http.response.bytes": 4}))
        alerts = eng.process(match(pull, t, {"user.name": "u", "http.response.bytes": 20}))
        assert bool(alerts) is fired


PERCENTILE = """
title: Slow p90
id: 0b000000-0000-4000-8000-000000000005
correlation:
  type: value_percentile
  rules: [pull]
  group-by: [user.name]
  timespan: 1h
  condition: {field: event.duration, percentile: 90, gte: 91}
---
title: Median
id: 0b000000-0000-4000-8000-000000000006
correlation:
  type: value_median
  rules: [pull]
  group-by: [user.name]
  timespan: 1h
  condition: {field: event.duration, gt: 50}
"""


def test_value_percentile_and_median_use_linear_interpolation() -> None:
    """Values 1..100: p90 is 90.1 (< 91, no alert), the median 50.5 (> 50, alert)."""
    eng, base = engine(PERCENTILE, allowed_lateness=0)
    alerts = []
    for i in range(1, 101):
        alerts += eng.process(match(base["pull"], i, {"user.name": "u", "event.duration": i}))
    assert [a.rule.type for a in alerts] == ["value_median"]
    assert alerts[0].event_count == 100
    assert "median of event.duration = 50.5" in alerts[0].reason


TEMPORAL = """
title: Token then pull
id: 0b000000-0000-4000-8000-000000000007
correlation:
  type: temporal
  rules: [token, pull]
  group-by: [user.name]
  timespan: 10m
"""


def test_temporal_fires_when_all_rules_matched_within_timespan_in_any_order() -> None:
    """Pull before token works; the second rule exactly 10m later is still inside."""
    eng, base = engine(TEMPORAL, allowed_lateness=0)
    assert eng.process(match(base["pull"], 0, {"user.name": "u"})) == []
    assert eng.process(match(base["pull"], 5, {"user.name": "u"})) == []
    alerts = eng.process(match(base["token"], 605, {"user.name": "u"}))
    assert len(alerts) == 1
    assert alerts[0].event_count == 2  # older pull is superseded by the newer one


def test_temporal_does_not_fire_just_outside_timespan() -> None:
    """The second rule 10m and half a second after the first is outside the window."""
    eng, base = engine(TEMPORAL, allowed_lateness=0)
    eng.process(match(base["pull"], 0, {"user.name": "u"}))
    assert eng.process(match(base["token"], 600.5, {"user.name": "u"})) == []


TEMPORAL_ORDERED = """
title: Push then pull
id: 0b000000-0000-4000-8000-000000000008
correlation:
  type: temporal_ordered
  rules: [push, pull]
  group-by: [user.name]
  timespan: 10m
"""


def test_temporal_ordered_requires_the_listed_order() -> None:
    """A pull before the push does not count; a pull after it does."""
    eng, base = engine(TEMPORAL_ORDERED, allowed_lateness=0)
    assert eng.process(match(base["pull"], 0, {"user.name": "u"})) == []
    assert eng.process(match(base["push"], 10, {"user.name": "u"})) == []
    alerts = eng.process(match(base["pull"], 20, {"user.name": "u"}))
    assert len(alerts) == 1
    assert [d["@timestamp"] - T0 for d in alerts[0].events] == [10, 20]
    assert "then" in alerts[0].reason


def test_native_rule_fields_resolve_against_the_raw_record_first() -> None:
    """For a CloudTrail rule, group-by reads the native record before the ECS document."""
    yaml = TEMPORAL_ORDERED.replace("[user.name]", "[userIdentity.userName]")
    eng, base = engine(yaml, allowed_lateness=0)
    raw = {"userIdentity": {"userName": "native"}}
    eng.process(match(base["push"], 0, {"user.name": "ecs-name"}, raw=raw))
    alerts = eng.process(match(base["pull"], 1, {"userIdentity.userName": "native"}))
    assert [a.group for a in alerts] == [{"userIdentity.userName": "native"}]


FEWER = """
title: Too few heartbeats
id: 0b000000-0000-4000-8000-000000000009
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 1m
  condition: {lt: 3}
"""


def test_less_than_conditions_wait_for_the_window_to_close() -> None:
    """`lt` can only be decided on a complete window [s, s + span]: two matches fire once
    the watermark passes s + span (not at s + span), three do not, and the matches of
    a judged window do not count again."""
    eng, base = engine(FEWER, allowed_lateness=0)
    for t in (0, 10):
        assert eng.process(match(base["pull"], t, {"user.name": "few"})) == []
    for t in (0, 10, 20):
        eng.process(match(base["pull"], t, {"user.name": "many"}))
    assert eng.advance_watermark(T0 + 60) == []
    alerts = eng.advance_watermark(T0 + 60.5)
    assert [a.group for a in alerts] == [{"user.name": "few"}]
    assert alerts[0].event_count == 2
    assert eng.advance_watermark(T0 + 1000) == []
    assert eng.stats.active_groups == 0


def test_flush_closes_open_windows() -> None:
    """At end of input every open window is decided as closed and state is dropped."""
    eng, base = engine(FEWER, allowed_lateness=0)
    eng.process(match(base["pull"], 0, {"user.name": "u"}))
    assert eng.advance_watermark(T0 + 30) == []
    assert len(eng.flush()) == 1
    assert eng.stats.active_groups == 0
