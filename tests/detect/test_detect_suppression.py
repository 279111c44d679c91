"""The ``suppression`` rule attribute and the ``rules.suppression`` defaults: which rules'
alerts are grouped, by which fields, within which window."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import event, write

from detector.detect import RuleSet, load_rules
from detector.detect.alerting import AlertPipeline
from detector.detect.policy import apply_suppression
from detector.detect.suppression import SuppressionDefaults, suppression_errors
from detector.models import Suppression

RULES = """
title: Secret read
id: 3d000000-0000-4000-8000-000000000001
name: secret_read
logsource: {product: ecs}
detection:
  sel: {event.action: GetSecretValue}
  condition: sel
level: medium
---
title: Role assumed
id: 3d000000-0000-4000-8000-000000000002
logsource: {product: ecs}
detection:
  sel: {event.action: AssumeRole}
  condition: sel
suppression:
  group_by: [user.name, source.ip]
  window: 15m
level: low
---
title: Secret sweep
id: 3d000000-0000-4000-8000-000000000003
correlation:
  type: event_count
  rules: [secret_read]
  group-by: [user.name]
  timespan: 10m
  generate: true
  condition: {gte: 3}
level: high
"""
READ, ROLE, SWEEP = (f"3d000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


@pytest.fixture
def ruleset(tmp_path: Path) -> RuleSet:
    """The rules above, loaded without problems."""
    rules = load_rules([write(tmp_path, "rules.yml", RULES)])
    assert not rules.errors, [str(e) for e in rules.errors]
    return rules


def _suppression(ruleset: RuleSet) -> dict[str, Suppression | None]:
    """Suppression of every rule's alerts, from the alerts the pipeline makes."""
    pipeline = AlertPipeline(ruleset)
    found = {}
    for n in range(3):
        ev = event(
            {},
            ecs={"event": {"action": "GetSecretValue"}, "user": {"name": "a"}},
            event_id=f"r{n}",
            timestamp=1_800_000_000.0 + n,
        )
        for alert in pipeline.process(ev):
            found[alert.rule.id] = alert.rule.suppression
    ev = event({}, ecs={"event": {"action": "AssumeRole"}}, event_id="x")
    for alert in pipeline.process(ev):
        found[alert.rule.id] = alert.rule.suppression
    return found


def test_rule_attribute_applies_without_global_settings(ruleset: RuleSet) -> None:
    """A rule's own ``suppression`` attribute turns it on; others stay off by default."""
    assert _suppression(ruleset) == {
        READ: None,
        ROLE: Suppression(group_by=("user.name", "source.ip"), window_seconds=900),
        SWEEP: None,
    }


def test_global_defaults_cover_correlations_and_single_event_rules(ruleset: RuleSet) -> None:
    """Enabled globally, a correlation groups by its group-by within its timespan; a
    single-event rule by the default fields within the default window; a rule's own
    attribute wins."""
    on = apply_suppression(ruleset, SuppressionDefaults(enabled=True))
    assert _suppression(on) == {
        READ: None,
        ROLE: Suppression(group_by=("user.name", "source.ip"), window_seconds=900),
        SWEEP: Suppression(group_by=("user.name",), window_seconds=600),
    }
    wide = apply_suppression(
        ruleset, SuppressionDefaults(enabled=True, group_by=("user.name",), window_seconds=120)
    )
    assert _suppression(wide)[READ] == Suppression(group_by=("user.name",), window_seconds=120)
    # The loaded rule set is unchanged.
    assert _suppression(ruleset)[SWEEP] is None


def test_suppression_true_without_fields_groups_by_rule(tmp_path: Path) -> None:
    """A single-event rule with ``suppression: true`` and no default fields folds all its
    alerts of a window into one document."""
    text = RULES.replace("level: medium\n", "level: medium\nsuppression: true\n", 1)
    rules = load_rules([write(tmp_path, "rules.yml", text)])
    assert _suppression(rules)[READ] == Suppression(group_by=(), window_seconds=3600)


def test_suppression_false_opts_a_rule_out(tmp_path: Path) -> None:
    """``suppression: false`` keeps a rule's alerts apart even when enabled globally."""
    text = RULES.replace("level: high\n", "level: high\nsuppression: false\n")
    rules = load_rules([write(tmp_path, "rules.yml", text)])
    on = apply_suppression(rules, SuppressionDefaults(enabled=True))
    assert _suppression(on)[SWEEP] is None


@pytest.mark.parametrize(
    ("attribute", "problem"),
    [
        ("suppression: 5", "true, false or a mapping"),
        ("suppression: {group_by: [user.name], every: 1h}", "true, false or a mapping"),
        ("suppression: {group_by: [user.name], window: soon}", "is not a timespan"),
        ("suppression: {group_by: [1]}", "list of field names"),
    ],
)
def test_malformed_attributes_are_rule_errors(tmp_path: Path, attribute: str, problem: str) -> None:
    """A malformed attribute is reported with the rule and its file."""
    text = RULES.replace("suppression:\n  group_by: [user.name, source.ip]\n  window: 15m\n", "")
    text = text.replace("level: low\n", f"level: low\n{attribute}\n")
    path = write(tmp_path, "rules.yml", text)
    rules = load_rules([path])
    errors = suppression_errors([r.sigma for r in rules.rules])
    assert len(errors) == 1
    assert problem in str(errors[0]) and "Role assumed" in str(errors[0])
    assert str(path) in str(errors[0])
