"""Single-event alerts and rule explanations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from engine_helpers import event, load_one

from detector.detect import DetectionEngine, alert_for_match, explain
from detector.models import alert_id

RULE = """
selection:
    eventName: StopLogging
    userAgent|contains: aws-cli
filter:
    userIdentity.type: AWSService
condition: selection and not filter
"""


def test_alert_is_deterministic_and_carries_the_evidence(tmp_path: Path) -> None:
    """The alert id is alert_id(rule id, event id); events carry event.id; raw is kept."""
    rules = load_one(tmp_path, RULE)
    raw = {"eventName": "StopLogging", "userAgent": "aws-cli/2", "userIdentity": {"type": "X"}}
    ecs = {"event": {"action": "StopLogging"}, "user": {"name": "alice"}}
    ev = event(raw, ecs=ecs, event_id="abc", timestamp=1_700_000_000.5)
    (match,) = DetectionEngine(rules).evaluate(ev)
    alert = alert_for_match(match)
    again = alert_for_match(DetectionEngine(rules).evaluate(ev)[0])
    assert alert.id == again.id == alert_id(rules.rules[0].info.id, "abc")
    assert alert.timestamp == datetime.fromtimestamp(1_700_000_000.5, UTC)
    assert alert.events[0]["event"]["id"] == "abc"
    assert alert.event_ids == ["abc"]
    assert alert.raw_events == (raw,)
    assert "event" not in ecs or "id" not in ecs["event"]  # the event itself is not modified
    assert "Test rule" in alert.reason
    assert "selection" in alert.reason and "filter" not in alert.reason
    assert "user.name=alice" in alert.reason
    assert alert.rule.level == "high"


def test_explain_reports_each_item(tmp_path: Path) -> None:
    """explain() says which detection items held, with the event's actual values."""
    rules = load_one(tmp_path, RULE)
    rid = rules.rules[0].info.id
    ev = event({"eventName": "StopLogging", "userAgent": "boto3", "userIdentity": {"type": "X"}})
    result = explain(rules, rid, ev)
    assert not result.matched and result.applies
    selection, flt = result.selections
    assert selection.name == "selection" and not selection.matched
    assert [(i.field, i.matched) for i in selection.items] == [
        ("eventName", True),
        ("userAgent", False),
    ]
    assert selection.items[1].modifiers == ("contains",)
    assert selection.items[1].actual == "boto3"
    assert flt.name == "filter" and not flt.matched
    text = "\n".join(result.lines())
    assert "userAgent|contains: ['aws-cli'] -> 'boto3': no" in text

    hit = event({"eventName": "StopLogging", "userAgent": "aws-cli/2"})
    explained = explain(rules, rid, hit)
    assert explained.matched
    assert explained.selections[1].items[0].describe().endswith("<absent>: no")
