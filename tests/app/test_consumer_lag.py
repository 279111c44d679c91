"""Consumer lag per topic and partition, in records and seconds, against a real broker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from detector.app.metrics import REGISTRY, ConsumerLag


def _gauge(name: str, topic: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"stage": "test", "topic": topic, "partition": "0"})


@pytest.mark.services
async def test_lag_counts_records_behind_and_the_age_of_the_last_consumed(services: Any) -> None:
    """Five records written a minute ago (by their timestamps), two consumed: three records
    behind and a lag of at least that minute; all consumed: zero and zero; after the
    partition is given up, it is no longer reported."""
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    written = int((time.time() - 60) * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"%d" % n, partition=0, timestamp_ms=written + n)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=services.kafka, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    lag = ConsumerLag("test")
    try:
        polled: dict[Any, list[Any]] = {}
        while not polled:
            polled = await consumer.getmany(timeout_ms=1000, max_records=2)
        lag.polled(polled)
        await lag.update(consumer)
        assert _gauge("detector_consumer_lag_records", topic) == 3
        assert (_gauge("detector_consumer_lag_seconds", topic) or 0) >= 59
        left = 3
        while left:
            got = await consumer.getmany(timeout_ms=1000)
            lag.polled(got)
            left -= sum(len(v) for v in got.values())
        await lag.update(consumer)
        assert _gauge("detector_consumer_lag_records", topic) == 0
        assert _gauge("detector_consumer_lag_seconds", topic) == 0
        consumer.unsubscribe()
        await lag.update(consumer)
        assert _gauge("detector_consumer_lag_records", topic) is None
    finally:
        await consumer.stop()
