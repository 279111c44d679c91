"""Done-when of alert suppression on the real services: 60 matches of a ``gte: 3``
correlation in one window become one document with ``docs_count``; the same document
after a restart of the pipeline, and the same document from replay as from streaming."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import test_two_stage
from test_two_stage import Running, Scenario, _record, _until

from detector.app.ingest import Ingestor
from detector.app.policy import effective_rules
from detector.app.replay import replay
from detector.detect import load_rules
from detector.sinks.config import OpenSearchSinkConfig
from detector.sinks.opensearch import OpenSearchSink
from detector.sinks.suppression import fold

start = test_two_stage.start  # the fixture: services started by a test are stopped after it

MATCHES = 60
#: Alerts of ``event_count >= 3`` over 60 matches of one group: one per three matches.
ALERTS = MATCHES // 3


async def _documents(services: Any, index: str, rule_id: str) -> list[dict[str, Any]]:
    """The alert documents of ``rule_id`` in ``index``, with their ``_id``."""
    async with httpx.AsyncClient(base_url=services.search_url, timeout=10) as client:
        await client.post(f"/{index}/_refresh")
        found = await client.post(
            f"/{index}/_search", json={"query": {"term": {"rule.id": rule_id}}, "size": 100}
        )
        if found.status_code == 404:
            return []
        assert found.status_code == 200, found.text
        return [h["_source"] | {"_id": h["_id"]} for h in found.json()["hits"]["hits"]]


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the write time, the one field two writers cannot share."""
    event = {k: v for k, v in doc["event"].items() if k != "created"}
    return {k: v for k, v in doc.items() if k != "_id"} | {"event": event}


@pytest.mark.services
async def test_sixty_matches_in_one_window_are_one_document_in_replay_and_streaming(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """Replay of 60 matching records stores one suppressed document counting the other
    19 alerts; the two-stage pipeline fed the same records on three source partitions,
    stopped and restarted half way, stores the same document (same id and content), and
    nothing else."""
    sc = Scenario(services, tmp_path, op="gte", count=3, timespan="10m")
    rules = sc.rules / "rules.yml"
    rules.write_text(rules.read_text() + "suppression: true\n")
    records = [_record("alice", n, n) for n in range(MATCHES)]  # one minute, one window

    # Replay: the records from a file, alerts written by the OpenSearch sink.
    logs = tmp_path / "cloudtrail.jsonl"
    logs.write_bytes(b"\n".join(orjson.dumps(r) for r in records))
    effective, _ = effective_rules(sc.settings.rules, load_rules(sc.settings.rules.paths))
    result = replay([logs], effective.ruleset, Ingestor(source="cloudtrail"))
    corr = [a for a in result.alerts if a.rule.id == sc.corr_id]
    assert len(corr) == ALERTS
    assert len({a.document_id for a in corr}) == 1
    replay_index = f"replay-{sc.index}"
    sink = OpenSearchSink(OpenSearchSinkConfig(hosts=[services.search_url], index=replay_index))
    try:
        await sink.ensure_setup()
        await sink.write(result.alerts)
    finally:
        await sink.close()
    [replayed] = await _documents(services, replay_index, sc.corr_id)
    assert replayed["kibana"]["alert"]["suppression"]["docs_count"] == ALERTS - 1
    assert replayed["kibana"]["alert"]["suppression"]["terms"] == [
        {"field": "userIdentity.userName", "value": "alice"}
    ]
    assert replayed["detector"]["suppression"]["events_total"] == MATCHES
    assert len(replayed["event"]["reference"]) == MATCHES
    assert _comparable(replayed) == _comparable(
        next(d for d in fold(result.alerts) if d["rule"]["id"] == sc.corr_id)
    )

    # Streaming: half the records, a drained stop, a new process, the other half, spread
    # over three source partitions (the correlate stage puts them back in event order).
    await sc.create_source(3)
    first = await start(sc)
    await sc.produce([(n % 3, r) for n, r in enumerate(records[: MATCHES // 2])])

    async def half_applied() -> bool:
        return first.applied() == MATCHES // 2

    await _until(half_applied, 60, "the first half did not reach the correlate stage")
    await first.stop()
    before_restart = await _documents(services, sc.index, sc.corr_id)
    assert len(before_restart) == 1
    second = await start(sc)
    await sc.produce([(n % 3, r) for n, r in enumerate(records[MATCHES // 2 :])])

    async def all_counted() -> bool:
        docs = await _documents(services, sc.index, sc.corr_id)
        return bool(docs) and docs[0]["kibana"]["alert"]["suppression"]["docs_count"] == ALERTS - 1

    await _until(all_counted, 60, "the streamed document never counted every alert")
    await second.stop()
    [streamed] = await _documents(services, sc.index, sc.corr_id)
    assert streamed["_id"] == replayed["_id"]
    assert _comparable(streamed) == _comparable(replayed)
