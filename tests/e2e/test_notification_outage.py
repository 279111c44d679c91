"""A notification outage dead-letters the notification and never stalls detection."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from http_support import Reply, ScriptedServer

from detector.app.health import HealthState
from detector.app.runner import Delivery
from detector.models import Alert, RuleInfo
from detector.sinks.config import JsonLinesSinkConfig
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.notify.config import SlackSinkConfig
from detector.sinks.notify.slack import SlackSink


@pytest.fixture
def slack_down() -> Iterator[str]:
    """A Slack webhook URL whose server answers every request with an empty 503."""
    with ScriptedServer([Reply(503)]).running() as server:
        yield f"{server.url}/services/T/B/x"


class _Consumer:
    """The consumer side of backpressure; counts pauses (none are expected here)."""

    def __init__(self) -> None:
        self.pauses = 0

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None:
        pass

    async def idle_poll(self, timeout_ms: int) -> None:
        await asyncio.sleep(timeout_ms / 1000)


@pytest.mark.services
async def test_slack_outage_dead_letters_the_alert_and_delivery_returns(
    services: Any, slack_down: str, tmp_path: Path
) -> None:
    """Slack answering 503 after its retries: the alert is still stored by the durable
    sink, the notification lands on the dead-letter topic with stage ``notify``, and the
    batch completes without pausing the consumer."""
    topic = f"notify-dlq-{uuid.uuid4().hex[:8]}"
    alert = Alert(
        id="a" * 32,
        timestamp=datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
        rule=RuleInfo(id="r1", title="Vault root token used", level="critical"),
        reason="root token used",
        events=({"event": {"id": "e1"}, "user": {"name": "mallory"}},),
    )
    stored = JsonLinesSink(JsonLinesSinkConfig(path=tmp_path / "alerts.jsonl", fsync=False))
    slack = SlackSink(
        SlackSinkConfig(
            webhook_url=slack_down,  # type: ignore[arg-type]
            allowed_hosts=["127.0.0.1"],
            allow_http=True,
            retry={"max_retries": 1, "backoff_initial": 0.01, "backoff_max": 0.02},  # type: ignore[arg-type]
        )
    )
    deadletters = KafkaDeadLetterSink(services.kafka, topic)
    await deadletters.start()
    consumer = _Consumer()
    try:
        delivery = Delivery(consumer, [stored, slack], deadletters, HealthState())
        await asyncio.wait_for(delivery.deliver([alert], []), 30)
    finally:
        await deadletters.close()
        await slack.close()

    assert consumer.pauses == 0
    (line,) = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert orjson.loads(line)["event"]["id"] == alert.id
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=services.kafka, auto_offset_reset="earliest", group_id=None
    )
    await reader.start()
    try:
        msg = await asyncio.wait_for(reader.getone(), 20)
    finally:
        await reader.stop()
    headers = {k: v.decode() for k, v in msg.headers}
    assert headers["detector.stage"] == "notify"
    assert headers["detector.reason"] == "notification_failed"
    assert orjson.loads(msg.value)["event"]["id"] == alert.id
