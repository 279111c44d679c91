"""Suppressed alerts in the search engine: one document per group and window, updated in place.

An alert whose rule suppresses (:attr:`detector.models.Alert.document_id` differs from its
id) is written as a bulk ``update`` of the group's document: the first alert creates it
(``upsert``), each later one runs :data:`SCRIPT`, which

- counts the alert once: member alert ids are kept, sorted (up to :data:`MAX_MEMBERS`),
  so an alert delivered again (at-least-once redelivery, replay after a crash) changes nothing;
- keeps ``kibana.alert.suppression.start``/``.end`` (earliest and latest alert time) and
  ``.docs_count`` (alerts suppressed into the document: members minus the first);
- keeps ``event.reference`` as the earliest :data:`MAX_REFERENCES` source events of the
  group (time, then id), with ``detector.suppression.events_total`` counting them all;
- keeps the content of the *earliest* alert (time, then id), whatever the arrival order,
  so streaming and replay converge on the same document;
- never touches the analyst's workflow fields (``kibana.alert.workflow_*``, ``case_ids``).

:func:`fold` computes the same documents in Python from a list of alerts (replay output).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from detector.models import Alert

#: Member alert ids kept per document for idempotent counting. Beyond it alerts are
#: still counted, but a redelivered one could be counted twice.
MAX_MEMBERS = 1000
#: Source event ids kept in ``event.reference`` of a suppressed document.
MAX_REFERENCES = 100
#: Attempts of an update that races another writer of the same document.
RETRY_ON_CONFLICT = 10

SCRIPT = """
def s = ctx._source;
def d = s.detector.suppression;
if (d.alert_ids.contains(params.id)) { ctx.op = 'none'; return; }
if (d.alert_ids.size() < params.max_members) {
  d.alert_ids.add(params.id);
  Collections.sort(d.alert_ids);
} else {
  d.overflow += 1;
}
d.events_total += params.count;
if (params.t < d.first_time || (params.t == d.first_time && params.id.compareTo(d.first_id) < 0)) {
  def keep = new HashMap();
  for (def e : s.kibana.alert.entrySet()) {
    if (e.getKey().startsWith('workflow_') || e.getKey() == 'case_ids') {
      keep.put(e.getKey(), e.getValue());
    }
  }
  def sup = s.kibana.alert.suppression;
  s.clear();
  s.putAll(params.doc);
  s.kibana.alert.putAll(keep);
  s.kibana.alert.suppression = sup;
  s.detector.suppression = d;
  d.first_time = params.t;
  d.first_id = params.id;
}
def window = s.kibana.alert.suppression;
if (params.t < d.start_time) { d.start_time = params.t; window.start = params.iso; }
if (params.t > d.end_time) { d.end_time = params.t; window.end = params.iso; }
def refs = new ArrayList(d.references);
for (def r : params.refs) { if (!refs.contains(r)) { refs.add(r); } }
Collections.sort(refs);
if (refs.size() > params.max_references) {
  refs = new ArrayList(refs.subList(0, params.max_references));
}
d.references = refs;
def ids = new ArrayList();
for (def r : refs) { ids.add(r.substring(14)); }
s.event.reference = ids;
window.docs_count = d.alert_ids.size() - 1 + d.overflow;
"""


def _millis(alert: Alert) -> int:
    return round(alert.timestamp.timestamp() * 1000)


def _references(alert: Alert) -> list[str]:
    """``<13-digit epoch ms>|<event id>``: sorts by time, then id."""
    t = _millis(alert)
    return [f"{t:013d}|{event_id}" for event_id in alert.event_ids]


def _event_ids(references: list[str]) -> list[str]:
    """The event ids of :func:`_references` entries (what :data:`SCRIPT` cuts with
    ``substring(14)``)."""
    return [r[14:] for r in references]


def first_document(alert: Alert) -> dict[str, Any]:
    """The document of a group made of ``alert`` alone (the ``upsert`` body)."""
    doc = alert.to_document()
    refs = sorted(set(_references(alert)))[:MAX_REFERENCES]
    t = _millis(alert)
    doc["event"]["reference"] = _event_ids(refs)
    doc["detector"]["suppression"] = {
        "alert_ids": [alert.id],
        "overflow": 0,
        "events_total": alert.event_count,
        "first_time": t,
        "first_id": alert.id,
        "start_time": t,
        "end_time": t,
        "references": refs,
    }
    return doc


def update_operation(alert: Alert, index: str) -> list[dict[str, Any]]:
    """The two bulk lines that add ``alert`` to its group's document."""
    doc = first_document(alert)
    return [
        {
            "update": {
                "_index": index,
                "_id": alert.document_id,
                "retry_on_conflict": RETRY_ON_CONFLICT,
            }
        },
        {
            "script": {
                "lang": "painless",
                "source": SCRIPT,
                "params": {
                    "id": alert.id,
                    "t": _millis(alert),
                    "iso": alert.timestamp.isoformat(),
                    "count": alert.event_count,
                    "refs": _references(alert),
                    "doc": doc,
                    "max_members": MAX_MEMBERS,
                    "max_references": MAX_REFERENCES,
                },
            },
            "upsert": doc,
        },
    ]


def fold(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """The documents the search sinks end up with for ``alerts`` (in any order), in the
    order of each document's first alert: suppressed groups folded as :data:`SCRIPT`
    folds them, other alerts as they are. Replay writes these."""
    groups: dict[str, dict[str, Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.document_id, {}).setdefault(alert.id, alert)
    docs: list[tuple[tuple[int, str], dict[str, Any]]] = []
    for members in groups.values():
        ordered = sorted(members.values(), key=lambda a: (_millis(a), a.id))
        first = ordered[0]
        if first.rule.suppression is None:
            docs.append(((_millis(first), first.id), first.to_document()))
            continue
        docs.append(((_millis(first), first.id), _folded(ordered)))
    return [doc for _, doc in sorted(docs, key=lambda item: item[0])]


def _folded(ordered: Sequence[Alert]) -> dict[str, Any]:
    first, last = ordered[0], ordered[-1]
    doc = first_document(first)
    state = doc["detector"]["suppression"]
    refs = sorted({r for a in ordered for r in _references(a)})[:MAX_REFERENCES]
    kept = sorted(a.id for a in ordered)[:MAX_MEMBERS]
    state.update(
        alert_ids=kept,
        overflow=len(ordered) - len(kept),
        events_total=sum(a.event_count for a in ordered),
        end_time=_millis(last),
        references=refs,
    )
    doc["event"]["reference"] = _event_ids(refs)
    suppression = doc["kibana"]["alert"]["suppression"]
    suppression["end"] = last.timestamp.isoformat()
    suppression["docs_count"] = len(ordered) - 1
    return doc
