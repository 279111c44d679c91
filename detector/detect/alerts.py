"""Single-event alerts from matches."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from detector.models import Alert, Event, Match, alert_id, time_implausible
from detector.models.alerts import field_value

#: ECS fields quoted in the alert reason when the event has them.
_REASON_FIELDS = ("event.action", "user.name", "source.ip", "event.outcome")


def alert_for_match(match: Match) -> Alert:
    """The alert for a single-event rule match.

    The id is ``alert_id(rule id, event id)``, so re-processing the same event never
    duplicates an alert. ``events`` holds the event's ECS document (with ``event.id``),
    ``raw_events`` its native record.
    """
    event = match.event
    ecs = _with_event_id(event)
    return Alert(
        id=alert_id(match.rule.id, event.id),
        timestamp=datetime.fromtimestamp(event.timestamp, UTC),
        rule=match.rule,
        reason=reason(match),
        events=(ecs,),
        raw_events=(dict(event.raw),),
    )


def reason(match: Match) -> str:
    """Why the rule fired, for analysts: rule, source, the detections that held, key fields."""
    event = match.event
    parts = [
        f"{match.rule.level} rule {match.rule.title!r} matched a "
        f"{event.logsource.product}/{event.logsource.service} event ({event.id})"
    ]
    if match.selections:
        parts.append("detections " + ", ".join(match.selections) + " held")
    facts = []
    for name in _REASON_FIELDS:
        value = field_value(event.ecs, name)
        if isinstance(value, str | int | float) and value != "":
            facts.append(f"{name}={value}")
    if facts:
        parts.append(" ".join(facts))
    implausible = time_implausible(event)
    if implausible:
        parts.append(f"event time implausible ({implausible}): not used for correlation")
    return "; ".join(parts)


def _with_event_id(event: Event) -> dict[str, Any]:
    ecs = copy.deepcopy(event.ecs)
    section = ecs.get("event")
    if not isinstance(section, dict):
        section = ecs["event"] = {}
    section["id"] = event.id
    return ecs
