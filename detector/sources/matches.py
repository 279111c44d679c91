"""The matches consumer: the correlate stage's consumer group on the matches topic.

Auto-commit is off: the correlate stage commits an offset only once the partition's
checkpoint holding every input below it is in the state topic. Connection security comes
from :func:`~detector.sources.kafkasecurity.kafka_security`, like every other Kafka client.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from detector.sources.kafka import GroupConsumer
from detector.sources.kafkasecurity import KafkaSecurity

#: How long the broker waits for a heartbeat before it gives the member's partitions to
#: others: Kafka's own client default (aiokafka's is 10 s). aiokafka sends no heartbeat
#: while the assignment callback runs, and the correlate stage restores state there, so
#: a restore longer than this made the group take the partitions away when it finished,
#: and the member restored them again, forever (a million first-seen terms take about
#: 15 s to restore; ``bench/bench_latency.py``).
SESSION_TIMEOUT_MS = 45_000


class MatchesConsumer(GroupConsumer):
    """A manually committed consumer of one topic; the stage seeks and commits per partition."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        client_id: str,
        max_partition_fetch_bytes: int,
        security: KafkaSecurity | None = None,
    ) -> None:
        self.topic = topic
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            **(security or {}),
        )
        super().__init__(consumer)

    async def start(self, listener: ConsumerRebalanceListener) -> None:
        """Subscribe with ``listener`` (awaited on every rebalance) and join the group."""
        self._consumer.subscribe([self.topic], listener=listener)
        await self._consumer.start()
        self._started = True

    async def getmany(
        self, *, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        """Fetch up to ``max_records`` records, waiting at most ``timeout_ms``."""
        polled: dict[TopicPartition, list[Any]] = await self._consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
        return polled

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record fetched from ``partition``."""
        self._consumer.seek(partition, offset)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (each the next offset to read); aiokafka's errors pass through."""
        await self._consumer.commit(dict(offsets))

    async def partitions_of(self, topics: Collection[str]) -> set[str]:
        """``topic/partition`` of every partition of ``topics`` that exists (from the
        cluster's metadata; topics that do not exist are left out)."""
        cluster = await self._consumer._client.fetch_all_metadata()
        return {
            f"{topic}/{partition}"
            for topic in topics
            for partition in cluster.partitions_for_topic(topic) or ()
        }
