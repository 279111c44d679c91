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

import bisect
import math
from collections.abc import Iterable, Mapping
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
    order of each document's first alert (time, then id): suppressed groups folded as
    :data:`SCRIPT` folds them, other alerts as they are (an alert id counts once)."""
    folding = StreamingFold()
    seen: set[str] = set()
    for alert in alerts:
        if alert.id not in seen:
            seen.add(alert.id)
            folding.add(alert)
    return folding.release(math.inf)


class StreamingFold:
    """:func:`fold` for a stream: documents come out once no later alert can change them.

    :meth:`add` takes each alert once (the caller drops repeated ids). An alert of a rule
    that does not suppress is a document of its own, released at the next
    :meth:`release`; a suppressed group is released once the event-time ``watermark``
    passed its window's end by the rule's ``hold`` (how far behind the watermark a later
    alert of the rule can be: 0 for single-event rules, the allowed lateness plus the
    window spans for a correlation). Memory holds the open groups only: the first and
    last alert, the member ids and the earliest :data:`MAX_REFERENCES` references each.
    An alert of a group already released (from an event late beyond every bound) starts
    the group anew, so its document id comes twice; :attr:`late_alerts` counts them.
    """

    def __init__(self, hold: Mapping[str, float] | None = None) -> None:
        self._hold = dict(hold or {})
        self._ready: list[Alert] = []
        self._groups: dict[str, _Group] = {}
        self._released: float = -math.inf
        #: Alerts of a group whose release time the watermark had passed.
        self.late_alerts = 0
        #: Documents released so far.
        self.documents = 0

    @property
    def open_groups(self) -> int:
        """Suppressed groups held, waiting for their window to end."""
        return len(self._groups)

    def add(self, alert: Alert) -> None:
        """Fold ``alert`` in (each alert id once)."""
        if alert.rule.suppression is None:
            self._ready.append(alert)
            return
        key = alert.document_id
        group = self._groups.get(key)
        if group is None:
            window = alert.suppression_window
            end = window[1].timestamp() if window else alert.timestamp.timestamp()
            group = self._groups[key] = _Group(alert, end + self._hold.get(alert.rule.id, 0.0))
        if group.release <= self._released:
            self.late_alerts += 1
        group.add(alert)

    def release(self, watermark: float) -> list[dict[str, Any]]:
        """Documents final at event time ``watermark`` (no later alert of an in-order event
        can change them), in order of their first alert (time, then id)."""
        self._released = max(self._released, watermark)
        docs = [((_millis(a), a.id), a.to_document()) for a in self._ready]
        self._ready = []
        final = [key for key, group in self._groups.items() if group.release <= watermark]
        for key in final:
            group = self._groups.pop(key)
            docs.append(((_millis(group.first), group.first.id), group.document()))
        docs.sort(key=lambda item: item[0])
        self.documents += len(docs)
        return [doc for _, doc in docs]


class _Group:
    """What :func:`_folded` needs of a suppressed group, kept as its alerts arrive."""

    __slots__ = ("events_total", "first", "ids", "last", "references", "release")

    def __init__(self, alert: Alert, release: float) -> None:
        self.first = self.last = alert
        self.release = release
        self.ids: set[str] = set()
        self.events_total = 0
        self.references: list[str] = []

    def add(self, alert: Alert) -> None:
        if alert.id in self.ids:
            return
        self.ids.add(alert.id)
        self.events_total += alert.event_count
        key = (_millis(alert), alert.id)
        if key < (_millis(self.first), self.first.id):
            self.first = alert
        if key > (_millis(self.last), self.last.id):
            self.last = alert
        refs = self.references
        for ref in _references(alert):
            at = bisect.bisect_left(refs, ref)
            if at < len(refs) and refs[at] == ref:
                continue
            refs.insert(at, ref)
            if len(refs) > MAX_REFERENCES:
                refs.pop()

    def document(self) -> dict[str, Any]:
        """The group's document, as :data:`SCRIPT` leaves it after all its alerts."""
        first, last = self.first, self.last
        doc = first_document(first)
        state = doc["detector"]["suppression"]
        kept = sorted(self.ids)[:MAX_MEMBERS]
        state.update(
            alert_ids=kept,
            overflow=len(self.ids) - len(kept),
            events_total=self.events_total,
            end_time=_millis(last),
            references=list(self.references),
        )
        doc["event"]["reference"] = _event_ids(self.references)
        suppression = doc["kibana"]["alert"]["suppression"]
        suppression["end"] = last.timestamp.isoformat()
        suppression["docs_count"] = len(self.ids) - 1
        return doc
