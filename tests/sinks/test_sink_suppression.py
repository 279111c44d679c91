"""Suppressed alerts on the real search engine: one document per group and window, whose
counts are idempotent and order-independent, with the analyst's workflow left alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from test_sink_search_engine import _count, engine, sink, sink_url  # noqa: F401 - fixtures

from detector.models import Alert, RuleInfo, Suppression, alert_id
from detector.sinks.bulk import BulkSink
from detector.sinks.documents import bulk_operations
from detector.sinks.suppression import MAX_REFERENCES, fold

pytestmark = pytest.mark.services

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULE = RuleInfo(
    id="5c000000-0000-4000-8000-000000000001",
    title="Secret read",
    level="high",
    suppression=Suppression(group_by=("user.name",), window_seconds=3600),
)


def alert(n: int, user: str = "alice", *, events: int = 1, rule: RuleInfo = RULE) -> Alert:
    """Alert ``n`` of ``user`` at T0 + n seconds with ``events`` source events."""
    docs = tuple(
        {
            "@timestamp": (T0 + timedelta(seconds=n)).isoformat(),
            "event": {"id": f"ev-{user}-{n}-{k}", "dataset": "aws.cloudtrail"},
            "user": {"name": user},
            "source": {"ip": "198.51.100.7"},
        }
        for k in range(events)
    )
    return Alert(
        id=alert_id(rule.id, user, n),
        timestamp=T0 + timedelta(seconds=n),
        rule=rule,
        reason=f"{user} read secret {n}",
        events=docs,
        event_count=events,
    )


async def _docs(engine: httpx.AsyncClient, index: str) -> list[dict[str, Any]]:  # noqa: F811
    await engine.post(f"/{index}/_refresh")
    found = await engine.post(f"/{index}/_search", json={"size": 100, "sort": ["@timestamp"]})
    assert found.status_code == 200, found.text
    return [h["_source"] | {"_id": h["_id"]} for h in found.json()["hits"]["hits"]]


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the write time (the only field that differs between writers)."""
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["event"] = {k: v for k, v in doc["event"].items() if k != "created"}
    return out


async def test_a_group_in_one_window_is_one_document_whatever_the_order(
    sink: BulkSink,  # noqa: F811
    engine: httpx.AsyncClient,  # noqa: F811
) -> None:
    """Twenty alerts of one user in one window, in shuffled batches with redeliveries,
    make one document: docs_count 19, start/end the earliest and latest alert, the
    earliest alert's content, and exactly what :func:`fold` computes for replay."""
    await sink.ensure_setup()
    alerts = [alert(n) for n in range(20)]
    shuffled = alerts[:]
    random.Random(7).shuffle(shuffled)
    for batch in (shuffled[:7], shuffled[7:14] + shuffled[:3], shuffled[14:], shuffled[5:9]):
        await sink.write(batch)
    [doc] = await _docs(engine, sink.index)
    assert doc["_id"] == alerts[0].document_id
    suppression = doc["kibana"]["alert"]["suppression"]
    assert suppression["docs_count"] == 19
    assert suppression["terms"] == [{"field": "user.name", "value": "alice"}]
    assert suppression["start"] == alerts[0].timestamp.isoformat()
    assert suppression["end"] == alerts[-1].timestamp.isoformat()
    assert doc["kibana"]["alert"]["reason"] == "alice read secret 0"
    assert doc["event"]["id"] == alerts[0].id
    assert doc["event"]["reference"] == [f"ev-alice-{n}-0" for n in range(20)]
    assert doc["detector"]["suppression"]["events_total"] == 20
    [folded] = fold(reversed(alerts))
    assert _comparable(doc) == _comparable(folded)


async def test_workflow_status_survives_later_and_earlier_alerts(
    sink: BulkSink,  # noqa: F811
    engine: httpx.AsyncClient,  # noqa: F811
) -> None:
    """An analyst's workflow status stays as set when later alerts of the group arrive,
    and when an earlier one replaces the document's content."""
    await sink.ensure_setup()
    await sink.write([alert(5)])
    [doc] = await _docs(engine, sink.index)
    index = (await engine.get(f"/{sink.index}/_doc/{doc['_id']}")).json()["_index"]
    done = await engine.post(
        f"/{index}/_update/{doc['_id']}",
        json={"doc": {"kibana": {"alert": {"workflow_status": "acknowledged"}}}},
    )
    assert done.status_code == 200, done.text
    await sink.write([alert(9), alert(1)])
    [doc] = await _docs(engine, sink.index)
    assert doc["kibana"]["alert"]["workflow_status"] == "acknowledged"
    assert doc["kibana"]["alert"]["reason"] == "alice read secret 1"
    assert doc["kibana"]["alert"]["suppression"]["docs_count"] == 2


async def test_groups_windows_and_plain_alerts_stay_apart(
    sink: BulkSink,  # noqa: F811
    engine: httpx.AsyncClient,  # noqa: F811
) -> None:
    """Another user, the next aligned window, or a rule without suppression each get their
    own document; references are capped with the total still counted."""
    await sink.ensure_setup()
    plain = RULE.model_copy(update={"suppression": None, "id": "plain"})
    many = alert(2, "carol", events=MAX_REFERENCES + 5)
    await sink.write([alert(1), alert(2), alert(1, "bob"), alert(3600), many, alert(1, rule=plain)])
    assert await _count(engine, sink.index) == 5
    docs = await _docs(engine, sink.index)
    expected = {a.document_id for a in (alert(1), alert(1, "bob"), alert(3600), many)}
    assert sorted(d["_id"] for d in docs) == sorted(expected | {alert(1, rule=plain).id})
    carol = next(d for d in docs if d["user"]["name"] == "carol")
    assert len(carol["event"]["reference"]) == MAX_REFERENCES
    assert carol["detector"]["suppression"]["events_total"] == MAX_REFERENCES + 5
    ops = bulk_operations([alert(1, rule=plain)], "x")
    assert "create" in ops[0]


def test_document_id_is_deterministic_and_aligned() -> None:
    """The document id depends on rule, terms and the aligned window only."""
    assert alert(0).document_id == alert(3599).document_id
    assert alert(0).document_id != alert(3600).document_id
    assert alert(0).document_id != alert(0, "bob").document_id
    assert alert(0).document_id != alert(0).id
    no_user = Alert(id="x", timestamp=T0, rule=RULE, reason="r")
    assert no_user.suppression_terms == [{"field": "user.name", "value": None}]
