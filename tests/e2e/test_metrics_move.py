"""Every metric the service declares moves on real Kafka and OpenSearch.

One run of both stages in process meets every situation a metric counts: records, events
and matches, alerts, a record that cannot decode, a sink outage (retried), a Slack outage
(dead-lettered), a match an exception silences, a late match, a correlation group evicted
at its cap, a match the detect stage sends again, state restore and checkpoints. The list
of metrics comes from the registry itself, so a metric added later without an update
fails here.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from http_support import Reply, ScriptedServer
from prometheus_client import Metric

from detector.app.metrics import REGISTRY
from detector.app.service import Service
from detector.app.settings import load_settings
from detector.models import Watermark, decode_matches_record

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

SECRET_READ = """
title: {title}
id: {rule_id}
name: {name}
status: test
description: A GetSecretValue call.
author: detector project
date: 2026-11-28
tags: [attack.credential-access, attack.t1555.006]
logsource: {{product: aws, service: cloudtrail}}
detection:
  selection:
    eventSource: secretsmanager.amazonaws.com
    eventName: GetSecretValue
  condition: selection
falsepositives: [Applications reading their secrets]
level: {level}
"""

BURST = """
title: Secret read burst (metrics)
id: {corr_id}
status: test
description: Many reads by one user.
author: detector project
date: 2026-11-28
tags: [attack.credential-access, attack.t1555.006]
correlation:
  type: event_count
  rules: [secret_read_metrics]
  group-by: [userIdentity.userName]
  timespan: 1m
  condition: {{gte: 50}}
falsepositives: [Rotation jobs]
level: high
"""


def _rules(alert_id: str, corr_id: str) -> str:
    """A single-event rule that alerts, and a correlation over a building block."""
    alerting = SECRET_READ.format(
        title="Secret read (metrics)", rule_id=alert_id, name="secret_read_alert", level="medium"
    )
    base = SECRET_READ.format(
        title="Secret read base (metrics)",
        rule_id=uuid.uuid4(),
        name="secret_read_metrics",
        level="low",
    )
    return "---".join((alerting, base, BURST.format(corr_id=corr_id)))


EXCEPTIONS = """
exceptions:
  - id: metrics-bot
    rules: [{alert_id}]
    reason: the bot reads its own secret
    author: detector tests
    detection:
      bot:
        userIdentity.userName: bot
      condition: bot
"""


def _record(user: str, seconds: float) -> dict[str, Any]:
    when = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333"},
        "eventTime": when,
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "requestParameters": {"secretId": "prod/db"},
        "eventID": str(uuid.uuid4()),
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }


def _totals() -> dict[str, float]:
    """Per metric family: the sum of its counter/count samples, or of its gauge samples."""
    totals: dict[str, float] = {}
    for family in REGISTRY.collect():
        totals[family.name] = sum(s.value for s in family.samples if _counts(family, s.name))
    return totals


def _counts(family: Metric, sample: str) -> bool:
    if family.type == "counter":
        return sample.endswith("_total")
    if family.type == "histogram":
        return sample.endswith("_count")
    return True


async def _until(
    check: Callable[[], Awaitable[bool] | bool], what: str, seconds: float = 60
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not reached in {seconds:.0f}s: {what}; totals: {_totals()}")


def _moved(family: str, before: dict[str, float]) -> bool:
    return _totals().get(family, 0.0) > before.get(family, 0.0)


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.mark.services
async def test_every_declared_metric_moves(services: Any, tmp_path: Path) -> None:
    """Counters and histograms of every declared metric family increase; gauges report
    this run's partitions (consumer lag of both stages) and its correlation groups."""
    tag = uuid.uuid4().hex[:8]
    alert_id, corr_id = str(uuid.uuid4()), str(uuid.uuid4())
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.yml").write_text(_rules(alert_id, corr_id))
    exceptions = tmp_path / "exceptions.yml"
    exceptions.write_text(EXCEPTIONS.format(alert_id=alert_id))
    blocked = tmp_path / "out"
    blocked.write_text("a file where the sink wants a directory: writes fail until fixed")
    source, matches = f"mm-cloudtrail-{tag}", f"mm-matches-{tag}"
    before = _totals()

    with ScriptedServer([Reply(503)]).running() as slack:
        settings = load_settings(
            kafka={
                "bootstrap_servers": services.kafka,
                "topics": [source],
                "topic_formats": {source: {"source": "cloudtrail"}},
                "group_id": f"mm-detect-{tag}",
                "correlate_group_id": f"mm-correlate-{tag}",
                "matches_topic": matches,
                "matches_partitions": 1,
                "state_topic": f"mm-state-{tag}",
                "deadletter_topic": f"mm-dlq-{tag}",
                "poll_timeout_ms": 200,
                "source_idle_seconds": 1,
            },
            rules={
                "paths": [str(rules)],
                "exceptions": [str(exceptions)],
                "max_groups_per_rule": 1,
                "allowed_lateness_seconds": 60,
            },
            sinks={
                "opensearch": {"hosts": [services.search_url], "index": f"mm-alerts-{tag}"},
                "jsonl": {"path": str(blocked / "alerts.jsonl"), "fsync": False},
                "slack": {
                    "webhook_url": f"{slack.url}/services/T/B/x",
                    "allowed_hosts": ["127.0.0.1"],
                    "allow_http": True,
                    "retry": {"max_retries": 0},
                },
            },
            health={"enabled": False},
        )
        service = Service(settings)
        task = asyncio.create_task(service.run())
        producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
        await producer.start()
        try:
            await _until(lambda: task.done() or service.health.ready, "service ready")
            assert not task.done(), task.result()

            async def send(*values: bytes) -> None:
                for value in values:
                    await producer.send_and_wait(source, value)

            # alice twice, then bob: bob's group evicts alice's (cap 1); the bot's read is
            # silenced by the exception; then a record that does not decode.
            await send(
                *(orjson.dumps(_record(user, s)) for user, s in [("alice", 0), ("alice", 1)]),
                orjson.dumps(_record("bot", 2)),
                orjson.dumps(_record("bob", 300)),
                b"{not json",
            )
            # the JSON-lines sink is down: the runner retries; then it comes back
            await _until(lambda: _moved("detector_sink_retries", before), "sink retried")
            blocked.unlink()
            blocked.mkdir()
            await _until((blocked / "alerts.jsonl").is_file, "sink recovered")
            await _until(lambda: _value("detector_state_groups") > 0, "groups active")
            # after bob at 300 s (60 s allowed lateness): dave at 270 s arrives late but in
            # time (put back in order, counted late), carol at 3 s too late
            await send(orjson.dumps(_record("dave", 270)), orjson.dumps(_record("carol", 3)))
            await _until(lambda: _moved("detector_late_events", before), "late match counted")
            await _resend_first_match(services.kafka, producer, matches)
            await _until(lambda: _moved("detector_duplicate_matches", before), "re-send dropped")
            after = _totals()
            text = "\n".join(f"{s.name}{s.labels}" for f in REGISTRY.collect() for s in f.samples)
        finally:
            await producer.stop()
            service.stop()
            await asyncio.wait_for(task, 60)

    still = [
        name
        for name, total in after.items()
        if name.startswith("detector_") and total <= before.get(name, 0.0) and name not in GAUGES
    ]
    assert not still, f"declared metrics that did not move: {still}"
    for stage, topic in (("detect", source), ("correlate", matches)):
        assert f"'stage': '{stage}', 'topic': '{topic}'" in text, (stage, topic)
    assert after["detector_state_groups"] > 0


#: Gauges report a level, not a count: checked by their samples above.
GAUGES = {"detector_state_groups", "detector_consumer_lag_records", "detector_consumer_lag_seconds"}


async def _resend_first_match(bootstrap: str, producer: AIOKafkaProducer, topic: str) -> None:
    """Produce the first routed match of the matches topic again, as a detect stage that
    restarted before its commit would."""
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    try:
        while True:
            msg = await asyncio.wait_for(reader.getone(), 20)
            if not isinstance(decode_matches_record(msg.value), Watermark):
                break
    finally:
        await reader.stop()
    await producer.send_and_wait(topic, msg.value, key=msg.key, partition=msg.partition)
