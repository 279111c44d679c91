"""The Kafka source's batches on the real local broker: records and per-partition facts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from detector.sources.kafka import KafkaSource, KafkaSourceConfig
from detector.state import TopicSpec, ensure_topics

pytestmark = pytest.mark.services


async def test_batch_lists_each_partitions_count_and_newest_timestamp(services: Any) -> None:
    """Records with their own timestamps on two partitions of a topic: every record comes
    once with its value, key, headers, timestamp and position, and the batch's
    ``partitions`` holds each partition's record count and its newest record's
    timestamp, which add up to the records yielded."""
    topic = f"source-batch-{uuid.uuid4().hex[:8]}"
    await ensure_topics(services.kafka, [TopicSpec(topic, 2, 1)])
    base = 1_700_000_000_000
    sent = {0: 5, 1: 3}
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
    await producer.start()
    try:
        for partition, count in sent.items():
            for n in range(count):
                await producer.send_and_wait(
                    topic,
                    b"v%d-%d" % (partition, n),
                    key=b"k%d" % n,
                    partition=partition,
                    timestamp_ms=base + 1000 * partition + n,
                    headers=[("h", b"%d" % n)],
                )
    finally:
        await producer.stop()
    config = KafkaSourceConfig(
        bootstrap_servers=services.kafka,
        group_id=f"source-batch-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        poll_timeout_ms=200,
    )
    records = []
    counted: dict[tuple[str, int], int] = {}
    newest: dict[tuple[str, int], int | None] = {}
    polls = 0
    async with KafkaSource(config) as source:
        async for batch in source.batches():
            polls += 1  # bounded: a lost record fails the asserts below, not a timeout
            records += batch
            assert sum(count for count, _ in batch.partitions.values()) == len(batch)
            for where, (count, stamp) in batch.partitions.items():
                counted[where] = counted.get(where, 0) + count
                newest[where] = stamp
            if len(records) >= sum(sent.values()) or polls > 100:
                source.stop()
    assert counted == {(topic, p): n for p, n in sent.items()}
    assert newest == {(topic, p): base + 1000 * p + n - 1 for p, n in sent.items()}
    seen = {(r.origin.partition, r.origin.offset): r for r in records}
    assert len(seen) == len(records) == sum(sent.values())
    for partition, count in sent.items():
        for n in range(count):
            record = seen[(partition, n)]
            assert record.origin.topic == topic
            assert record.value == b"v%d-%d" % (partition, n)
            assert record.key == b"k%d" % n
            assert record.headers == (("h", b"%d" % n),)
            assert record.timestamp_ms == base + 1000 * partition + n
