"""Producer of the internal matches topic: routed matches and watermark heartbeats.

A routed match belongs to the partition Kafka's default partitioner gives its key,
``<target>`` + ``\\x1f`` + group key (murmur2, as older versions produced it), so every
match of one group of one stateful rule reaches one partition (and one correlate member).
Per batch, the matches of one partition travel together in one compressed record (see
:mod:`detector.models.codec`), which also carries the member's heartbeat; a heartbeat of
its own goes only to the partitions that got no such record, so each partition's
watermark moves on event time even when no match reaches it. The producer is idempotent
with ``acks=all``: :meth:`write` returns only when every record is acknowledged, and
records of one partition keep their order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from functools import lru_cache
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from detector.errors import SinkError
from detector.models import RoutedMatch, Watermark, encode_batch, encode_watermark

log = structlog.get_logger(__name__)

#: Largest match record (an event with its native record); the broker default is 1 MiB.
MAX_RECORD_BYTES = 8 * 1024 * 1024


#: Progress of a member's source partitions: ``{"topic/partition": (time, idle)}``.
Progress = dict[str, tuple[float | None, bool]]


def record_key(routed: RoutedMatch) -> bytes:
    """The partitioning key of a routed match: target and group key."""
    return f"{routed.target}\x1f{routed.key}".encode()


@lru_cache(maxsize=65_536)
def _hash(target: str, key: str) -> int:
    hashed: int = murmur2(f"{target}\x1f{key}".encode())
    return hashed & 0x7FFFFFFF


def partition_for(routed: RoutedMatch, partitions: int) -> int:
    """The partition of ``routed`` among ``partitions``: Kafka's default partitioner of
    :func:`record_key` (murmur2), so a group stays where older versions sent it."""
    return _hash(routed.target, routed.key) % partitions


class KafkaMatchSink:
    """Produces routed matches and heartbeats to ``topic``."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "detector-matches",
        client_id: str = "detector",
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.member = client_id
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=MAX_RECORD_BYTES,
            **(security or {}),
        )
        self._started = False

    async def start(self) -> None:
        """Connect the producer."""
        await self._producer.start()
        self._started = True

    def watermark(
        self, sources: Progress, earliest: Mapping[str, float] | None = None
    ) -> Watermark:
        """This member's heartbeat: ``sources`` as ``{"topic/partition": (newest plausible
        event time or None, idle)}`` and the earliest plausible event time seen on each."""
        newest = max((t for t, _ in sources.values() if t is not None), default=0.0)
        return Watermark(newest, self.member, sources, dict(earliest or {}))

    async def write(
        self, matches: Sequence[RoutedMatch], heartbeat: Watermark | None = None
    ) -> set[int]:
        """Send ``matches``, one batch record per partition they go to (each carrying
        ``heartbeat``), and wait for every acknowledgement; returns those partitions."""
        if not matches:
            return set()
        try:
            partitions = sorted(await self._producer.partitions_for(self.topic))
            by_partition: dict[int, list[RoutedMatch]] = {}
            for routed in matches:
                p = partitions[partition_for(routed, len(partitions))]
                by_partition.setdefault(p, []).append(routed)
            documents: dict[int, Any] = {}  # events feeding several partitions: encoded once
            futures = [
                await self._producer.send(self.topic, value=value, partition=p)
                for p, routed in by_partition.items()
                for value in encode_batch(routed, heartbeat, documents=documents)
            ]
            for future in futures:
                await future
        except Exception as exc:
            raise SinkError(f"matches topic {self.topic!r} unavailable: {exc}") from exc
        return set(by_partition)

    async def heartbeat(
        self,
        sources: Progress,
        earliest: dict[str, float] | None = None,
        *,
        skip: Collection[int] = (),
    ) -> None:
        """Tell every partition but ``skip`` (those a batch record just told) the progress
        of this member's source partitions: ``{"topic/partition": (newest plausible event
        time or None, idle)}``, and the earliest plausible event time seen on each."""
        try:
            partitions = await self._producer.partitions_for(self.topic)
            value = encode_watermark(self.watermark(sources, earliest))
            futures = [
                await self._producer.send(self.topic, value=value, partition=p)
                for p in sorted(partitions)
                if p not in skip
            ]
            for future in futures:
                await future
        except Exception as exc:
            raise SinkError(f"matches topic {self.topic!r} unavailable: {exc}") from exc

    async def close(self) -> None:
        """Flush and disconnect; idempotent."""
        if self._started:
            self._started = False
            await self._producer.stop()
