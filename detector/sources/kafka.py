"""Kafka source: an aiokafka consumer in a consumer group, committed by the runner.

Auto-commit is off: the runner calls :meth:`KafkaSource.commit` only after every alert of
the batches yielded so far is durable in the sinks (at-least-once; sinks are idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import IllegalStateError
from pydantic import Field

from detector.errors import SourceError
from detector.models import FAMILIES, Origin, RawRecord
from detector.sources.kafkasecurity import KafkaSecurityConfig, kafka_security

log = structlog.get_logger(__name__)


class KafkaSourceConfig(KafkaSecurityConfig):
    """Consumer settings (the ``kafka`` config section), with the connection security."""

    bootstrap_servers: str = "localhost:9092"
    group_id: str = "detector"
    topics: list[str] = Field(default_factory=lambda: list[str](FAMILIES))
    auto_offset_reset: str = "earliest"
    max_batch_records: int = Field(default=500, ge=1)
    poll_timeout_ms: int = Field(default=500, ge=1)
    max_partition_fetch_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    client_id: str = "detector"


class SourceBatch(list[RawRecord]):
    """The records of one poll, partition after partition, and per source partition
    ``(topic, partition)`` how many records it gave and the broker timestamp (ms) of its
    newest one (None when the broker gave none): what the detect stage counts and reports
    per partition, without a pass over the records."""

    __slots__ = ("partitions",)

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[tuple[str, int], tuple[int, int | None]] = {}


class GroupConsumer:
    """An aiokafka consumer in a group, committed by its stage: the backpressure and lag
    reads every source shares (a :class:`~detector.app.runner.Pausable` and a
    :class:`~detector.app.metrics.LagSource`)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._started = False

    def pause(self) -> None:
        """Stop fetching (backpressure) while still polling for heartbeats."""
        self._consumer.pause(*self._consumer.assignment())

    def resume(self) -> None:
        """Undo :meth:`pause`."""
        self._consumer.resume(*self._consumer.assignment())

    async def idle_poll(self, timeout_ms: int) -> None:
        """Poll while paused so the group keeps this member (max.poll.interval.ms).

        Partitions assigned by a rebalance meanwhile are paused too; anything fetched
        anyway is rewound, so nothing is skipped.
        """
        self.pause()
        polled = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=1)
        for tp, messages in polled.items():
            if messages:
                self._consumer.seek(tp, messages[0].offset)

    def assignment(self) -> set[TopicPartition]:
        """Partitions currently assigned to this member."""
        return set(self._consumer.assignment())

    def highwater(self, partition: TopicPartition) -> int | None:
        """End offset of ``partition`` as of the last fetch (None before one): for lag."""
        high: int | None = self._consumer.highwater(partition)
        return high

    async def position(self, partition: TopicPartition) -> int:
        """Offset of the next record this member will be given from ``partition``."""
        offset: int = await self._consumer.position(partition)
        return offset

    async def close(self) -> None:
        """Leave the group and close connections; idempotent."""
        if self._started:
            self._started = False
            await self._consumer.stop()


class KafkaSource(GroupConsumer):
    """Yields batches of :class:`RawRecord` from the configured topics.

    Use as an async context manager; ``stop()`` ends :meth:`batches` after the current poll.
    """

    def __init__(
        self, config: KafkaSourceConfig, security: Mapping[str, Any] | None = None
    ) -> None:
        self.config = config
        if security is None:
            security = kafka_security(config)
        consumer = AIOKafkaConsumer(
            *config.topics,
            bootstrap_servers=config.bootstrap_servers,
            group_id=config.group_id,
            client_id=config.client_id,
            enable_auto_commit=False,
            auto_offset_reset=config.auto_offset_reset,
            max_partition_fetch_bytes=config.max_partition_fetch_bytes,
            **security,
        )
        super().__init__(consumer)
        self._stopping = False

    async def __aenter__(self) -> KafkaSource:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect and join the consumer group."""
        try:
            await self._consumer.start()
        except Exception as exc:  # aiokafka raises its own tree; give the user the address
            raise SourceError(
                f"cannot connect to Kafka at {self.config.bootstrap_servers}: {exc}; "
                "check DETECTOR_KAFKA__BOOTSTRAP_SERVERS"
            ) from exc
        self._started = True
        log.info("kafka_source_started", topics=self.config.topics, group=self.config.group_id)

    def stop(self) -> None:
        """Ask :meth:`batches` to end after the current poll."""
        self._stopping = True

    async def batches(self) -> AsyncIterator[SourceBatch]:
        """Poll with ``getmany``; empty polls yield an empty batch so callers see progress."""
        while not self._stopping:
            polled = await self._consumer.getmany(
                timeout_ms=self.config.poll_timeout_ms,
                max_records=self.config.max_batch_records,
            )
            batch = SourceBatch()
            for tp, messages in polled.items():
                if not messages:
                    continue
                topic, partition = tp.topic, tp.partition
                # positional arguments: a frozen dataclass's keyword call costs more, and
                # this runs once per record
                batch.extend(
                    [
                        RawRecord(
                            msg.value or b"",
                            Origin(topic, partition, msg.offset),
                            msg.key,
                            tuple(msg.headers or ()),
                            msg.timestamp,
                        )
                        for msg in messages
                    ]
                )
                batch.partitions[(topic, partition)] = (len(messages), messages[-1].timestamp)
            yield batch

    async def commit(self) -> None:
        """Commit the positions of everything yielded so far."""
        await self._consumer.commit()

    async def caught_up(self, sources: Collection[str]) -> set[str]:
        """Which of ``sources`` (``"topic/partition"``, assigned) have no record left to
        read: the position reached the last known end offset. Unknown counts as not."""
        done: set[str] = set()
        for tp in self._consumer.assignment():
            name = f"{tp.topic}/{tp.partition}"
            if name not in sources:
                continue
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await asyncio.wait_for(self._consumer.position(tp), timeout=1.0)
            except (IllegalStateError, TimeoutError):
                continue  # revoked meanwhile, or no position yet
            if position >= high:
                done.add(name)
        return done
