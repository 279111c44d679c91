"""Builders shared by the correlation tests: rule collections and fabricated matches."""

from __future__ import annotations

from typing import Any

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from detector.detect.correlation import CorrelationEngine, rule_key
from detector.detect.correlation.spec import rule_info
from detector.models import Event, LogSource, Match

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z

RULES = """
title: Image pull
id: 0a000000-0000-4000-8000-000000000001
name: pull
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
---
title: Image push (CloudTrail)
id: 0a000000-0000-4000-8000-000000000002
name: push
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName: PutImage}
  condition: sel
---
title: Vault token created
id: 0a000000-0000-4000-8000-000000000003
name: token
logsource: {product: ecs}
detection:
  sel: {event.action: create}
  condition: sel
"""


def collection(correlations: str) -> SigmaCollection:
    """The base rules plus ``correlations`` (YAML documents), references resolved."""
    coll = SigmaCollection.from_yaml(RULES + "---\n" + correlations)
    coll.resolve_rule_references()
    return coll


def engine(correlations: str, **kwargs: Any) -> tuple[CorrelationEngine, dict[str, SigmaRule]]:
    """An engine over every correlation in ``correlations`` and the base rules by name."""
    coll = collection(correlations)
    corr = [r for r in coll.rules if isinstance(r, SigmaCorrelationRule)]
    base = {str(r.name): r for r in coll.rules if isinstance(r, SigmaRule)}
    return CorrelationEngine(corr, **kwargs), base


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"user.name": "a"}`` -> ``{"user": {"name": "a"}}``."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


_counter = [0]


def match(
    rule: SigmaRule,
    t: float,
    ecs: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> Match:
    """A match of ``rule`` on an event at ``T0 + t`` with the given (flat) ECS fields."""
    _counter[0] += 1
    eid = event_id or f"ev-{_counter[0]}"
    doc = nest({"@timestamp": T0 + t, "event.id": eid, **(ecs or {})})
    event = Event(
        id=eid,
        timestamp=T0 + t,
        family="registry",
        logsource=LogSource("ecs", "ecs"),
        ecs=doc,
        raw=raw or {},
    )
    return Match(rule=rule_info(rule), event=event)


def key_of(rule: SigmaRule) -> str:
    """The ``Match.rule.id`` of ``rule``."""
    return rule_key(rule)
