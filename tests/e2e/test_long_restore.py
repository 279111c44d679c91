"""A correlate member whose restore outlasts aiokafka's default session timeout keeps its
partitions (real broker)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from detector.sources.matches import MatchesConsumer

pytestmark = pytest.mark.services

#: Longer than aiokafka's default session timeout (10 s).
RESTORE_SECONDS = 12.0


class _SlowRestore(ConsumerRebalanceListener):  # type: ignore[misc]
    """Takes as long as a restore of a large state in the assignment callback."""

    def __init__(self) -> None:
        self.assignments: list[set[TopicPartition]] = []
        self.restored = asyncio.Event()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assignments.append(set(assigned))
        if len(self.assignments) == 1:
            await asyncio.sleep(RESTORE_SECONDS)
        self.restored.set()


async def test_a_restore_longer_than_aiokafkas_session_timeout_keeps_the_partitions(
    services: Any,
) -> None:
    """aiokafka sends no heartbeat while the assignment callback runs, and the correlate
    stage restores its state there. A restore of 12 s (a million first-seen terms take
    about 15 s) must not make the broker expire the member: its first commit after the
    restore succeeds and it is not assigned the partitions again (with aiokafka's 10 s
    default the commit failed, the member rejoined and restored again, forever)."""
    topic = f"long-restore-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    consumer = MatchesConsumer(
        bootstrap_servers=services.kafka,
        topic=topic,
        group_id=f"g-{topic}",
        client_id="long-restore",
        max_partition_fetch_bytes=1024 * 1024,
    )
    listener = _SlowRestore()
    await consumer.start(listener)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not listener.restored.is_set() and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(timeout_ms=200, max_records=100)
        assert listener.restored.is_set(), "never assigned"
        # the first poll after the restore, then a commit of every partition
        await consumer.getmany(timeout_ms=200, max_records=100)
        await consumer.commit({tp: 0 for tp in listener.assignments[0]})
        for _ in range(10):  # a few more polls: an expired member would rejoin here
            await consumer.getmany(timeout_ms=200, max_records=100)
        assert len(listener.assignments) == 1, listener.assignments
    finally:
        await consumer.close()
