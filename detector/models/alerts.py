"""Alerts: what the engine emits and the sinks make durable."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

#: A Sigma level.
Level = Literal["informational", "low", "medium", "high", "critical"]
#: Sigma levels from least to most severe.
LEVELS: tuple[str, ...] = get_args(Level)


def level_rank(level: str) -> int:
    """Position of a Sigma level in :data:`LEVELS`; an unknown level counts as ``medium``."""
    try:
        return LEVELS.index(level.lower())
    except ValueError:
        return LEVELS.index("medium")


#: Sigma levels to Kibana severities and risk scores.
SEVERITY = {
    "informational": ("low", 21),
    "low": ("low", 21),
    "medium": ("medium", 47),
    "high": ("high", 73),
    "critical": ("critical", 99),
}


class Suppression(BaseModel):
    """How a rule's alerts are grouped into one document (Elastic's alert suppression).

    Alerts of the rule with the same values of ``group_by`` whose times fall in the same
    ``window_seconds``-long window (aligned on the epoch, in event time) share one
    document: the first is written, the others update its counts.
    """

    model_config = ConfigDict(frozen=True)

    group_by: tuple[str, ...]
    window_seconds: float = Field(gt=0)


class RuleInfo(BaseModel):
    """The rule facts an alert carries (taken from the Sigma rule)."""

    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    level: str = "medium"
    description: str = ""
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    falsepositives: tuple[str, ...] = ()
    #: The rule's ``author``: alerts keep it (the Detection Rule License of SigmaHQ rules asks it).
    author: tuple[str, ...] = ()
    type: str = "sigma"  # "sigma", or the correlation type such as "event_count"
    suppression: Suppression | None = None


def alert_id(rule_id: str, *parts: str | int | float) -> str:
    """Deterministic alert id: the same rule over the same evidence gives the same id.

    Single-event alerts use ``(rule id, event id)``; correlation alerts use
    ``(rule id, group key, window start)``. Re-delivery therefore never duplicates.
    """
    h = hashlib.sha256(rule_id.encode())
    for part in parts:
        h.update(b"\x1f")
        h.update(str(part).encode())
    return h.hexdigest()[:32]


class Alert(BaseModel):
    """One alert.

    ``events`` holds the ECS documents of the source events (each with ``event.id``),
    ``raw_events`` their native records; ``group`` is the correlation group key (empty
    for single-event rules) and ``window_start``/``window_end`` the event-time window.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    timestamp: datetime
    rule: RuleInfo
    reason: str
    events: tuple[dict[str, Any], ...] = ()
    raw_events: tuple[dict[str, Any], ...] = ()
    group: dict[str, str] = Field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    event_count: int = 1

    @property
    def severity(self) -> str:
        """Kibana severity derived from the Sigma level."""
        return SEVERITY.get(self.rule.level, ("medium", 47))[0]

    @property
    def suppression_terms(self) -> list[dict[str, str | None]]:
        """``[{field, value}]`` of the rule's suppression group-by (empty when not
        suppressed): a correlation group key, else the first event's ECS field, else its
        native field. A missing value is ``None`` (such alerts are grouped together)."""
        rule = self.rule.suppression
        if rule is None:
            return []
        first = self.events[0] if self.events else {}
        raw = self.raw_events[0] if self.raw_events else {}
        terms: list[dict[str, str | None]] = []
        for name in rule.group_by:
            value: Any = self.group.get(name)
            if value is None:
                value = field_value(first, name)
            if value is None:
                value = field_value(raw, name)
            terms.append({"field": name, "value": None if value is None else _text(value)})
        return terms

    @property
    def suppression_window(self) -> tuple[datetime, datetime] | None:
        """The aligned event-time window holding this alert, when its rule suppresses."""
        rule = self.rule.suppression
        if rule is None:
            return None
        width = rule.window_seconds
        start = math.floor(self.timestamp.timestamp() / width) * width
        return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + width, UTC)

    @property
    def document_id(self) -> str:
        """The id of the document that holds this alert: the alert id, or for a suppressed
        rule ``alert_id(rule id, "suppression", terms, window start)``, shared by every
        alert of the group and window (deterministic: replay and streaming agree)."""
        window = self.suppression_window
        if window is None:
            return self.id
        terms = json.dumps(self.suppression_terms, sort_keys=True, separators=(",", ":"))
        return alert_id(self.rule.id, "suppression", terms, window[0].timestamp())

    @property
    def event_ids(self) -> list[str]:
        """The ``event.id`` of every source event, in order."""
        ids: list[str] = []
        for ev in self.events:
            eid = ev.get("event", {}).get("id")
            if isinstance(eid, str):
                ids.append(eid)
        return ids

    def to_document(self) -> dict[str, Any]:
        """The ECS alert document written to Elasticsearch/OpenSearch and JSON-lines files.

        Source ECS fields of the first event are lifted to the top level so analysts can
        filter on ``user.name`` or ``source.ip`` directly; the full evidence is under
        ``kibana.alert.original_events`` (ECS) and ``detector.raw_events`` (native, stored
        unindexed so attacker-chosen keys cannot explode the mapping).
        """
        severity, risk = SEVERITY.get(self.rule.level, ("medium", 47))
        first = self.events[0] if self.events else {}
        doc: dict[str, Any] = {
            key: value
            for key, value in first.items()
            if key not in {"event", "@timestamp", "kibana", "detector", "rule"}
        }
        now = datetime.now(UTC).isoformat()
        doc.update(
            {
                "@timestamp": self.timestamp.isoformat(),
                "event": {
                    "kind": "alert",
                    "id": self.id,
                    "severity": risk,
                    "created": now,
                    "reference": self.event_ids,
                    "dataset": first.get("event", {}).get("dataset"),
                },
                "rule": {
                    "id": self.rule.id,
                    "uuid": self.rule.id,
                    "name": self.rule.title,
                    "description": self.rule.description,
                    "ruleset": "sigma",
                    "category": self.rule.type,
                    "reference": list(self.rule.references),
                    "author": list(self.rule.author),
                },
                "tags": list(self.rule.tags),
                "threat": _threat(self.rule.tags),
                "kibana": {
                    "alert": {
                        "uuid": self.id,
                        "status": "active",
                        "workflow_status": "open",
                        "severity": severity,
                        "risk_score": risk,
                        "reason": self.reason,
                        "start": self.timestamp.isoformat(),
                        "original_time": first.get("@timestamp"),
                        "rule": {
                            "uuid": self.rule.id,
                            "name": self.rule.title,
                            "description": self.rule.description,
                            "type": self.rule.type,
                            "tags": list(self.rule.tags),
                            "false_positives": list(self.rule.falsepositives),
                            "references": list(self.rule.references),
                        },
                        "group": {"key": dict(self.group)} if self.group else {},
                        "window": {
                            "start": self.window_start.isoformat() if self.window_start else None,
                            "end": self.window_end.isoformat() if self.window_end else None,
                        },
                        "event_count": self.event_count,
                        "original_events": list(self.events),
                    }
                },
                "detector": {"raw_events": list(self.raw_events)},
            }
        )
        if self.rule.suppression is not None:
            # One alert so far; the search sinks' update counts the later ones.
            doc["kibana"]["alert"]["uuid"] = self.document_id
            doc["kibana"]["alert"]["suppression"] = {
                "terms": self.suppression_terms,
                "start": self.timestamp.isoformat(),
                "end": self.timestamp.isoformat(),
                "docs_count": 0,
            }
        return doc


ATTACK_URL = "https://attack.mitre.org/techniques/"


def field_value(doc: Mapping[str, Any], name: str) -> Any:
    """A dotted field of a nested document (or a literal dotted key); ``None`` if absent."""
    if name in doc:
        return doc[name]
    node: Any = doc
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _text(value: Any) -> str:
    """A group-by value as text: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _threat(tags: tuple[str, ...]) -> list[dict[str, Any]]:
    """ECS ``threat.*`` entries from Sigma ``attack.tNNNN`` tags."""
    techniques = [t.split(".", 1)[1].upper() for t in tags if t.lower().startswith("attack.t")]
    if not techniques:
        return []
    return [
        {
            "framework": "MITRE ATT&CK",
            "technique": [
                {"id": t, "reference": f"{ATTACK_URL}{t.replace('.', '/')}/"} for t in techniques
            ],
        }
    ]
