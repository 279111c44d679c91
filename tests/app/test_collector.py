"""Garbage-collector settings: a restored correlate state leaves the collector's walk."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from detector.app.collector import freeze_restored_state
from detector.detect.correlation import CorrelationEngine
from detector.detect.correlation.spec import rule_info
from detector.models import Event, LogSource, Match

T0 = 1_700_000_000.0
RULES = """
title: Image pull
id: 0e000000-0000-4000-8000-000000000001
name: pull
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
---
title: Pulls
id: 0e000000-0000-4000-8000-000000000002
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 10}
"""


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the objects frozen by the test back to the collector afterwards."""
    yield
    gc.unfreeze()


def test_a_restored_state_is_not_walked_by_later_collections(unfrozen: None) -> None:
    """Once a restored state is frozen, no generation the collector walks holds its
    groups, and the engine still drops them when they expire."""
    rules = SigmaCollection.from_yaml(RULES)
    rules.resolve_rule_references()
    correlations = [r for r in rules.rules if isinstance(r, SigmaCorrelationRule)]
    (pull,) = [rule_info(r) for r in rules.rules if isinstance(r, SigmaRule)]
    engine = CorrelationEngine(correlations)
    for user in range(100):
        ecs = {"user": {"name": f"u{user}"}, "registry": {"operation": "pull"}}
        event = Event(f"e{user}", T0, "registry", LogSource("ecs", "ecs"), ecs, {})
        engine.process(Match(pull, event), 0)
    restored = CorrelationEngine(correlations)
    for rule, key, value in engine.changes(0, everything=True):
        restored.load_group(0, rule, key, value)
    assert restored.stats.active_groups == 100
    entries = next(iter(restored._parts[0].groups[0].values()))
    assert any(o is entries for o in gc.get_objects())
    freeze_restored_state()
    assert not any(o is entries for o in gc.get_objects())
    restored.advance_watermark(T0 + 3600, 0)
    assert restored.stats.active_groups == 0
