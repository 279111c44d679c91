"""Replay's alert output streams: documents as they become final, memory bounded.

The reference :func:`_whole_fold` is the fold replay used while it kept every alert to the
end (group by document id, sort each group, fold): the streaming fold must give the same
documents.
"""

from __future__ import annotations

import math
import tracemalloc
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from conftest import pack_rules

from detector.app.policy import effective_rules
from detector.app.replay import RecentIds, ReorderBound, Replay
from detector.app.settings import RulesConfig, SuppressionConfig
from detector.detect import RuleSet, load_rules
from detector.models import Alert
from detector.sinks.suppression import (
    MAX_MEMBERS,
    MAX_REFERENCES,
    StreamingFold,
    first_document,
    fold,
)

INPUTS = [Path("examples/scenario/logs"), Path("examples/samples")]


def _millis(alert: Alert) -> int:
    return round(alert.timestamp.timestamp() * 1000)


def _whole_fold(alerts: list[Alert]) -> list[dict[str, Any]]:
    """The fold of all alerts at once, as replay computed it before it streamed."""
    groups: dict[str, dict[str, Alert]] = {}
    for alert in alerts:
        groups.setdefault(alert.document_id, {}).setdefault(alert.id, alert)
    docs: list[tuple[tuple[int, str], dict[str, Any]]] = []
    for members in groups.values():
        ordered = sorted(members.values(), key=lambda a: (_millis(a), a.id))
        first, last = ordered[0], ordered[-1]
        if first.rule.suppression is None:
            docs.append(((_millis(first), first.id), first.to_document()))
            continue
        doc = first_document(first)
        refs = sorted({f"{_millis(a):013d}|{e}" for a in ordered for e in a.event_ids})[
            :MAX_REFERENCES
        ]
        kept = sorted(a.id for a in ordered)[:MAX_MEMBERS]
        doc["detector"]["suppression"].update(
            alert_ids=kept,
            overflow=len(ordered) - len(kept),
            events_total=sum(a.event_count for a in ordered),
            end_time=_millis(last),
            references=refs,
        )
        doc["event"]["reference"] = [r[14:] for r in refs]
        doc["kibana"]["alert"]["suppression"]["end"] = last.timestamp.isoformat()
        doc["kibana"]["alert"]["suppression"]["docs_count"] = len(ordered) - 1
        docs.append(((_millis(first), first.id), doc))
    return [doc for _, doc in sorted(docs, key=lambda item: item[0])]


def _comparable(doc: dict[str, Any]) -> bytes:
    """``doc`` without its write time (``event.created``), as sortable bytes."""
    event = {k: v for k, v in doc["event"].items() if k != "created"}
    return orjson.dumps(doc | {"event": event}, option=orjson.OPT_SORT_KEYS)


def _suppressed_pack() -> RuleSet:
    """Both packs with suppression on as scripts/demo runs it (user.name, one hour; every
    correlation by its group-by within its timespan)."""
    config = RulesConfig(suppression=SuppressionConfig(enabled=True, group_by=["user.name"]))
    effective, _ = effective_rules(config, pack_rules(config.paths))
    return effective.ruleset


def _stream(run: Replay) -> tuple[list[Alert], list[dict[str, Any]], int]:
    """Alerts and documents as ``detector replay`` writes them, and how many suppressed
    documents came out before the end of the input."""
    folding = StreamingFold(run.holds)
    alerts: list[Alert] = []
    docs: list[dict[str, Any]] = []
    early = 0
    for step in run.steps():
        alerts.extend(step.alerts)
        for alert in step.alerts:
            folding.add(alert)
        released = folding.release(step.watermark)
        if step.watermark < math.inf:
            early += sum(1 for d in released if "suppression" in d["kibana"]["alert"])
        docs.extend(released)
    assert folding.open_groups == 0 and folding.late_alerts == 0
    assert folding.documents == len(docs)
    return alerts, docs, early


def test_streaming_fold_writes_the_documents_of_the_whole_fold() -> None:
    """Replay of the scenario and the samples with suppression on (single-event rules by
    user.name per hour, correlations by their group-by): the documents written as groups
    close are those of the fold of all alerts at the end (same ids, counts, members,
    references, content), most suppressed groups are written before the input ends, and
    :func:`fold` gives them too."""
    alerts, docs, early = _stream(Replay(INPUTS, _suppressed_pack()))
    whole = _whole_fold(alerts)
    assert len(whole) < len(alerts)
    suppressed = [d for d in whole if "suppression" in d["kibana"]["alert"]]
    assert any(d["kibana"]["alert"]["suppression"]["docs_count"] > 0 for d in suppressed)
    assert sorted(map(_comparable, docs)) == sorted(map(_comparable, whole))
    assert early > len(suppressed) // 2
    assert list(map(_comparable, fold(reversed(alerts)))) == list(map(_comparable, whole))


def test_fold_of_alerts_in_any_order_and_repeated_equals_the_whole_fold() -> None:
    """:func:`fold` (the streaming fold drained at once) gives the whole fold's documents
    in its order, whatever the order of the alerts and with every alert given twice."""
    alerts, _, _ = _stream(Replay(INPUTS, _suppressed_pack()))
    shuffled = alerts[1::2] + alerts[::-2] + alerts
    assert list(map(_comparable, fold(shuffled))) == list(map(_comparable, _whole_fold(alerts)))


SINGLE = """
title: Secret read (suppressed by user per 5 minutes)
id: 6f1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e20
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: GetSecretValue
  condition: selection
level: high
suppression:
  group_by: [userIdentity.userName]
  window: 5m
---
title: Secret read of the db secret
name: db_secret_read
id: 6f1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e21
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    requestParameters.secretId: prod/db
  condition: selection
level: medium
---
title: Many db secret reads by one user
id: 6f1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e22
status: test
correlation:
  type: event_count
  rules: [db_secret_read]
  group-by: [userIdentity.userName]
  timespan: 2m
  condition: {gte: 3}
level: high
suppression: true
"""

USERS = 7


def _input(path: Path, count: int) -> Path:
    """``count`` records, 5 a second and up to 10 s out of order: every one matches the
    suppressed rule, one in three the unsuppressed one (and feeds the correlation)."""
    with path.open("wb") as fh:
        for n in range(count):
            at = 1_780_000_000 + n // 5 - n * 7919 % 11
            fh.write(
                orjson.dumps(
                    {
                        "eventVersion": "1.08",
                        "userIdentity": {"type": "IAMUser", "userName": f"u{n % USERS}"},
                        "eventTime": f"{_iso(at)}",
                        "eventSource": "secretsmanager.amazonaws.com",
                        "eventName": "GetSecretValue",
                        "requestParameters": {"secretId": "prod/db" if n % 3 == 0 else "x"},
                        "eventID": f"00000000-0000-4000-8000-{n:012d}",
                        "awsRegion": "eu-west-1",
                    }
                )
                + b"\n"
            )
    return path


def _iso(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bounded_run(path: Path, rules: RuleSet) -> tuple[Counter[str], int, Counter[str]]:
    """Replay ``path`` as the command does, tracing allocations; returns the peaks of
    what it holds (open groups, remembered ids), the traced peak in bytes, and the
    written documents' counts."""
    run = Replay([path], rules, reorder=ReorderBound(seconds=60, events=500))
    folding = StreamingFold(run.holds)
    peaks: Counter[str] = Counter()
    written: Counter[str] = Counter()
    tracemalloc.start()
    try:
        for step in run.steps():
            for alert in step.alerts:
                folding.add(alert)
            peaks["open_groups"] = max(peaks["open_groups"], folding.open_groups)
            peaks["recent_ids"] = max(peaks["recent_ids"], len(run.recent))
            for doc in folding.release(step.watermark):
                written[doc["rule"]["name"]] += 1
                written["alerts"] += 1 + doc["kibana"]["alert"].get("suppression", {}).get(
                    "docs_count", 0
                )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written["alerts"] == run.result.alert_count
    return peaks, peak, written


def test_memory_of_an_alert_heavy_replay_does_not_grow_with_the_input(tmp_path: Path) -> None:
    """Every record raises an alert: replay of 8,000 and of 24,000 records (3x the alerts,
    documents and event time) hold a bounded number of open groups and remembered alert
    ids, the large run's traced peak of allocations stays within 1.25x of the small run's
    (keeping the alerts would add about 3 KB each), and every alert is written (counted
    in a document)."""
    (tmp_path / "rules.yml").write_text(SINGLE)
    rules = load_rules([tmp_path / "rules.yml"])
    small = _bounded_run(_input(tmp_path / "small.jsonl", 8_000), rules)
    large = _bounded_run(_input(tmp_path / "large.jsonl", 24_000), rules)
    assert large[2]["alerts"] > 24_000 and large[2]["alerts"] > 2.9 * small[2]["alerts"]
    # held at most: the groups of 7 users in the 5-minute windows of the single-event rule
    # and the 2-minute windows of the correlation that a chunk of events (400 s) and the
    # correlation's hold (3 minutes) span; ids of one chunk and the correlation's hold
    for peaks, _, _ in (small, large):
        assert 0 < peaks["open_groups"] <= 12 * USERS
        assert 0 < peaks["recent_ids"] <= 2 * 2_000
    assert large[1] < 1.25 * small[1], (small[1], large[1])


def test_recent_ids_forget_what_the_watermark_passed() -> None:
    """An id is refused while remembered and accepted again once the watermark passed
    the time it was kept until; memory holds only the ids not yet passed."""
    recent = RecentIds()
    assert recent.add("a", 10.0) and recent.add("b", 20.0)
    assert not recent.add("a", 10.0)
    recent.forget(10.0)
    assert len(recent) == 2 and not recent.add("a", 10.0)
    recent.forget(15.0)
    assert len(recent) == 1 and recent.add("a", 30.0) and not recent.add("b", 20.0)
    recent.forget(math.inf)
    assert len(recent) == 0
