"""What a notification says about an alert, independent of where it is sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from detector.models import Alert
from detector.sinks.kibana import DATA_VIEW_ID
from detector.sinks.notify.routing import lookup


def event_fields(alert: Alert, fields: Sequence[str]) -> list[tuple[str, str]]:
    """``(field, value)`` of each of ``fields`` present in the alert's first event."""
    first = alert.events[0] if alert.events else {}
    return [(f, v) for f in fields if (v := lookup(first, f)) is not None]


def attack_tags(alert: Alert) -> list[str]:
    """The rule's ``attack.*`` tags (tactics and techniques)."""
    return [t for t in alert.rule.tags if t.lower().startswith("attack.")]


def _rison(text: str) -> str:
    """A rison string literal (Kibana's URL state format)."""
    return "'" + text.replace("!", "!!").replace("'", "!'") + "'"


def discover_url(kibana_url: str, query: str, start: datetime, end: datetime | str = "now") -> str:
    """A Kibana Discover link on the alert data view, with a KQL ``query`` and time range."""
    to = end if isinstance(end, str) else end.astimezone(UTC).isoformat()
    g = f"(time:(from:{_rison(start.astimezone(UTC).isoformat())},to:{_rison(to)}))"
    a = f"(index:{_rison(DATA_VIEW_ID)},query:(language:kuery,query:{_rison(query)}))"
    safe = "(),:!'*-._~"
    return f"{kibana_url}/app/discover#/?_g={quote(g, safe=safe)}&_a={quote(a, safe=safe)}"


def alert_url(kibana_url: str, alert: Alert) -> str:
    """A Discover link to the alert document (``event.id`` is the alert id), +-1 hour."""
    query = 'event.id:"' + alert.id.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return discover_url(
        kibana_url,
        query,
        alert.timestamp - timedelta(hours=1),
        alert.timestamp + timedelta(hours=1),
    )


def rule_url(kibana_url: str, rule_id: str, since: datetime) -> str:
    """A Discover link to every alert of one rule since ``since``."""
    query = 'rule.id:"' + rule_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return discover_url(kibana_url, query, since)


def wall_time(seconds: float) -> datetime:
    """A wall-clock timestamp (``time.time()`` seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


def clock_time(seconds: float) -> str:
    """``HH:MM UTC`` of a wall-clock timestamp, for summaries."""
    return wall_time(seconds).strftime("%H:%M UTC")


def suppressed_note(count: int, window_seconds: float) -> str:
    """The "and N more" sentence for a notification that follows a suppression window."""
    noun = "alert" if count == 1 else "alerts"
    return (
        f"and {count} more {noun} of this rule for the same key were not notified in the "
        f"previous {_duration(window_seconds)} window"
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:.0f} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:g} s"


__all__ = [
    "alert_url",
    "attack_tags",
    "clock_time",
    "discover_url",
    "event_fields",
    "rule_url",
    "suppressed_note",
    "wall_time",
]
