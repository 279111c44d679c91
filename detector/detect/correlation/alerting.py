"""Alerts of correlation rules: deterministic id, evidence, and a reason people can read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from detector.detect.correlation.spec import CorrelationSpec
from detector.detect.correlation.window import Entry, ordered_chain
from detector.models import Alert, alert_id
from detector.models.serialized import plain


def when(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: float) -> str:
    """Epoch seconds as ISO 8601 UTC with a ``Z``."""
    return when(ts).isoformat().replace("+00:00", "Z")


def group_text(names: Sequence[str], key: Sequence[str]) -> str:
    """``user.name=alice, source.ip=1.2.3.4``; ``all events`` without group-by."""
    return ", ".join(f"{n}={v}" for n, v in zip(names, key, strict=True)) or "all events"


def key_id(key: Sequence[str]) -> str:
    """An unambiguous text form of a group key, for alert ids."""
    return orjson.dumps(list(key)).decode()


def _measure_text(spec: CorrelationSpec, window: Sequence[Entry], value: float) -> str:
    titles = [r.title for r in spec.refs]
    kind = spec.type
    if kind == "event_count":
        return f"{len(window)} events of {' / '.join(titles)}"
    if kind == "value_count":
        return f"{value:g} distinct {spec.value_field} over {len(window)} events"
    if kind == "temporal":
        seen = sorted({e.ref for e in window})
        return f"rules {', '.join(titles[i] for i in seen)} matched"
    if kind == "temporal_ordered":
        return f"rules {' then '.join(titles)} matched in order"
    labels = {"value_sum": "sum", "value_avg": "average", "value_median": "median"}
    label = labels.get(kind) or f"p{spec.percentile or 0:g}"
    return f"{label} of {spec.value_field} = {value:g} over {len(window)} events"


def build_alert(
    spec: CorrelationSpec,
    key: Sequence[str],
    window: Sequence[Entry],
    value: float,
    max_evidence: int,
) -> Alert:
    """The alert of one window firing.

    The id is ``alert_id(rule id, group key, window start)`` where the window start is the
    event time of the earliest contributing match, so re-processing the same evidence
    (redelivery, replay after restore) yields the same id.
    """
    start, end = window[0].time, window[-1].time
    evidence = window
    if spec.type == "temporal_ordered":
        evidence = ordered_chain(window, len(spec.refs)) or window
    reason = (
        f"{_measure_text(spec, window, value)} for {group_text(spec.group_by, key)} "
        f"between {iso(start)} and {iso(end)} (condition {spec.condition_text()})"
    )
    return Alert(
        id=alert_id(spec.info.id, key_id(key), start),
        timestamp=when(end),
        rule=spec.info,
        reason=reason,
        events=tuple(plain(e[3]) for e in evidence[:max_evidence]),
        group=dict(zip(spec.group_by, key, strict=True)),
        window_start=when(start),
        window_end=when(end),
        event_count=len(window),
    )


def alert_document(alert: Alert) -> dict[str, Any]:
    """The small evidence document a chained correlation keeps for an inner alert."""
    return {
        "@timestamp": alert.timestamp.isoformat().replace("+00:00", "Z"),
        "event": {"kind": "alert", "id": alert.id},
        "rule": {"id": alert.rule.id, "name": alert.rule.title},
    }
