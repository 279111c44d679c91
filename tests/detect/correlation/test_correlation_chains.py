"""Chaining, aliases, generate, extended conditions, and rules the engine rejects."""

from __future__ import annotations

import pytest
from corr_helpers import RULES, T0, collection, engine, match
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from detector.detect.correlation import CorrelationEngine, suppressed_rule_ids
from detector.errors import RuleLoadError

CHAIN = """
title: Burst of pulls
id: 0d000000-0000-4000-8000-000000000001
name: burst
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 1m
  condition: {gte: 2}
---
title: Repeated bursts
id: 0d000000-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules: [burst]
  group-by: [user.name]
  timespan: 1h
  condition: {gte: 2}
"""


def test_chained_correlation_counts_the_alerts_of_the_inner_one() -> None:
    """Inner alerts feed the outer correlation (group-by read from the inner group) and,
    with generate: false, are not returned themselves."""
    eng, base = engine(CHAIN, allowed_lateness=0)
    alerts = []
    for t in (0, 1, 600, 601):
        alerts += eng.process(match(base["pull"], t, {"user.name": "u"}))
    assert [a.rule.title for a in alerts] == ["Repeated bursts"]
    outer = alerts[0]
    assert outer.group == {"user.name": "u"}
    assert outer.event_count == 2
    assert [e["event"]["kind"] for e in outer.events] == ["alert", "alert"]
    assert outer.window_start is not None and outer.window_start.timestamp() == T0 + 1
    assert eng.stats.rules["0d000000-0000-4000-8000-000000000001"].alerts == 2


def test_generate_true_returns_the_inner_alerts_too() -> None:
    """generate: true on the outer rule keeps the referenced rules' own output."""
    yaml = CHAIN.replace("  rules: [burst]", "  generate: true\n  rules: [burst]")
    eng, base = engine(yaml, allowed_lateness=0)
    alerts = []
    for t in (0, 1, 600, 601):
        alerts += eng.process(match(base["pull"], t, {"user.name": "u"}))
    assert [a.rule.title for a in alerts] == [
        "Burst of pulls",
        "Burst of pulls",
        "Repeated bursts",
    ]


def test_suppressed_rule_ids_lists_referenced_rules_without_generate() -> None:
    """Base rules referenced with generate: false must not alert on their own."""
    coll = collection(CHAIN)
    assert suppressed_rule_ids(coll.rules) == {"0a000000-0000-4000-8000-000000000001"}
    coll = collection(CHAIN.replace("  rules: [pull]", "  generate: true\n  rules: [pull]"))
    assert suppressed_rule_ids(coll.rules) == set()


ALIASES = """
title: Push and token by the same person
id: 0d000000-0000-4000-8000-000000000003
correlation:
  type: temporal
  rules: [push, token]
  group-by: [actor]
  aliases:
    actor:
      push: userIdentity.userName
      token: user.name
  timespan: 5m
"""


def test_aliases_map_a_group_by_name_to_a_field_per_rule() -> None:
    """`actor` reads userIdentity.userName from the CloudTrail record and user.name from
    the ECS document of the Vault event."""
    eng, base = engine(ALIASES, allowed_lateness=0)
    raw = {"userIdentity": {"userName": "alice"}}
    assert eng.process(match(base["push"], 0, {"user.name": "other"}, raw=raw)) == []
    assert eng.process(match(base["token"], 1, {"user.name": "bob"})) == []
    alerts = eng.process(match(base["token"], 2, {"user.name": "alice"}))
    assert [a.group for a in alerts] == [{"actor": "alice"}]


EXTENDED = """
title: Pull without a push
id: 0d000000-0000-4000-8000-000000000004
correlation:
  type: temporal
  rules: [pull, push]
  group-by: [user.name]
  timespan: 1m
  condition: pull and not push
"""


def test_extended_condition_with_not_is_decided_when_the_window_closes() -> None:
    """`pull and not push` fires for a pull with no push in its window, once closed."""
    eng, base = engine(EXTENDED, allowed_lateness=0)
    eng.process(match(base["pull"], 0, {"user.name": "lonely"}))
    eng.process(match(base["pull"], 0, {"user.name": "paired"}))
    eng.process(match(base["push"], 30, {"user.name": "paired"}))
    assert eng.advance_watermark(T0 + 60) == []
    alerts = eng.advance_watermark(T0 + 61)
    assert [a.group for a in alerts] == [{"user.name": "lonely"}]
    assert "pull and not push in 1m" in alerts[0].reason


def _load(yaml: str) -> CorrelationEngine:
    coll = SigmaCollection.from_yaml(RULES + "---\n" + yaml)
    coll.resolve_rule_references()
    return CorrelationEngine([r for r in coll.rules if r not in coll.rules[:3]])


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        (
            "title: P\ncorrelation:\n  type: value_percentile\n  rules: [pull]\n"
            "  group-by: [user.name]\n  timespan: 1h\n  condition: {field: x, gt: 1}\n",
            "needs 'percentile'",
        ),
        (
            "title: O\ncorrelation:\n  type: temporal_ordered\n  rules: [pull, push]\n"
            "  group-by: [user.name]\n  timespan: 1h\n  condition: pull and push\n",
            "extended (boolean) condition",
        ),
        (
            "title: A\ncorrelation:\n  type: temporal\n  rules: [pull, push]\n"
            "  group-by: [who]\n  aliases: {who: {pull: user.name}}\n  timespan: 1h\n",
            "alias 'who' has no field for rule(s) push",
        ),
    ],
)
def test_rules_the_engine_cannot_evaluate_are_rejected_at_load(yaml: str, message: str) -> None:
    """Unsupported or incomplete rules fail loudly with every error listed."""
    with pytest.raises(RuleLoadError) as info:
        _load(yaml)
    assert message in str(info.value)
    assert len(info.value.errors) == 1


def test_correlation_referencing_an_unloaded_correlation_is_rejected() -> None:
    """An outer rule whose inner correlation is not given to the engine would never fire."""
    coll = collection(CHAIN)
    outer = [r for r in coll.rules if r.title == "Repeated bursts"]
    with pytest.raises(RuleLoadError, match="not loaded"):
        CorrelationEngine(outer)


def test_rule_ids_map_references_to_match_ids() -> None:
    """Without resolved references, rule_ids tells which Match.rule.id a name stands for."""
    rule = SigmaCorrelationRule.from_yaml(
        CHAIN.split("---", maxsplit=1)[0]
    )  # references unresolved
    eng = CorrelationEngine([rule], rule_ids={"pull": "custom-pull-id"})
    assert eng.rule_ids == frozenset({"custom-pull-id"})
