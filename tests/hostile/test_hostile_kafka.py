"""On the real broker: an envelope of bad records is one dead-letter message."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hostile_inputs import cloudtrail, records_of_zeros

from detector.app.ingest import Ingestor
from detector.models import Origin, RawRecord
from detector.sinks.deadletters import KafkaDeadLetterSink

pytestmark = pytest.mark.services


async def _consume(bootstrap: str, topic: str, want: int) -> list[Any]:
    """Every message of ``topic`` (waits for ``want``, then for stragglers)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[Any] = []
    try:
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=500)
            got.extend(m for msgs in batch.values() for m in msgs)
            if len(got) >= want and not batch:
                break
    finally:
        await consumer.stop()
    return got


async def test_envelope_of_bad_records_is_one_dead_letter_message(services: Any) -> None:
    """A source message ``{"Records": [0 x 20,000, one good record]}`` read from Kafka:
    one event, and one message on the dead-letter topic holding the source message once,
    with ``detector.bad_elements: 20000`` (was 20,000 messages of the whole record)."""
    topic = f"hostile-{uuid.uuid4().hex[:8]}"
    value = records_of_zeros(20_000)[:-2] + b"," + orjson.dumps(cloudtrail(1)) + b"]}"
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()
    (message,) = await _consume(services.kafka, topic, 1)
    record = RawRecord(message.value, Origin(topic=topic, partition=0, offset=message.offset))
    events, letters = Ingestor().ingest(record)
    assert len(events) == 1
    sink = KafkaDeadLetterSink(services.kafka, f"{topic}-deadletter")
    await sink.start()
    try:
        await sink.write(letters)
    finally:
        await sink.close()
    (dead,) = await _consume(services.kafka, f"{topic}-deadletter", 1)
    assert dead.value == value
    headers = dict(dead.headers)
    assert headers["detector.bad_elements"] == b"20000"
    assert headers["detector.reason"] == b"wrong_type"
    assert headers["detector.origin.topic"] == topic.encode()
