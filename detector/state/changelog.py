"""Correlation state on a compacted Kafka topic (the changelog of the correlate stage).

Each key holds the latest snapshot of one input partition's state; compaction keeps only
the newest record per key, so restoring reads the topic (or the one partition a key is
written to) from its beginning to its end and keeps the last value of the wanted keys.
A record with an empty value is a tombstone (the key is deleted).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detector.errors import SinkError, SourceError

log = structlog.get_logger(__name__)

#: Largest snapshot the store writes and reads (the topic is created with this limit).
DEFAULT_MAX_BYTES = 32 * 1024 * 1024


class KafkaChangelogStore:
    """Snapshots by key in ``topic`` (``cleanup.policy=compact``).

    ``save(key, snapshot, partition=p)`` writes to partition ``p`` modulo the topic's
    partition count (the input partition, so a restore reads one partition); without
    ``partition`` the key's hash picks it. ``load`` must be given the same ``partition``.
    Use :meth:`start` before and :meth:`close` after.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "detector-state",
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_seconds: float = 60.0,
        client_id: str = "detector-state",
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.timeout_seconds = timeout_seconds
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=True,
            compression_type=None,  # checkpoints arrive compressed (Checkpoint.to_bytes)
            max_request_size=max_bytes,
            **(security or {}),
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=max_bytes,
            fetch_max_bytes=max_bytes,
            **(security or {}),
        )
        self._partitions = 1
        self._started = False

    async def start(self) -> None:
        """Connect and learn the topic's partition count."""
        try:
            await self._producer.start()
            await self._consumer.start()
            partitions = await self._producer.partitions_for(self.topic)
        except Exception as exc:  # aiokafka's own tree; name the topic and address
            await self.close()
            raise SourceError(
                f"cannot open state topic {self.topic!r} at {self.bootstrap_servers}: {exc}"
            ) from exc
        self._partitions = max(1, len(partitions or ()))
        self._started = True

    def partition_for(self, key: str, partition: int | None = None) -> int:
        """The topic partition ``key`` is written to."""
        if partition is not None:
            return partition % self._partitions
        return zlib.crc32(key.encode()) % self._partitions

    async def save(self, key: str, snapshot: bytes, partition: int | None = None) -> None:
        """Write ``snapshot`` under ``key`` and wait until Kafka acknowledged it."""
        try:
            await self._producer.send_and_wait(
                self.topic,
                key=key.encode(),
                value=snapshot,
                partition=self.partition_for(key, partition),
            )
        except Exception as exc:
            raise SinkError(f"state topic {self.topic!r} unavailable: {exc}") from exc

    async def load(self, key: str, partition: int | None = None) -> bytes | None:
        """The latest snapshot stored under ``key``, or ``None``."""
        return (await self.load_many([key], [self.partition_for(key, partition)])).get(key)

    async def load_many(
        self, keys: Iterable[str], partitions: Iterable[int] | None = None
    ) -> dict[str, bytes]:
        """The latest snapshot of each of ``keys`` found in ``partitions`` (default: all),
        read from the beginning to the end offsets taken when the call starts."""
        wanted = set(keys)
        chosen = sorted(set(partitions if partitions is not None else range(self._partitions)))
        tps = [TopicPartition(self.topic, p) for p in chosen]
        found: dict[str, bytes] = {}
        if not wanted or not tps:
            return found
        started = time.monotonic()
        try:
            self._consumer.assign(tps)
            await self._consumer.seek_to_beginning(*tps)
            ends = await self._consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                if time.monotonic() - started > self.timeout_seconds:
                    raise TimeoutError(f"not read to its end in {self.timeout_seconds}s")
                polled = await self._consumer.getmany(*pending, timeout_ms=500)
                for tp, messages in polled.items():
                    for msg in messages:
                        if msg.offset >= ends[tp]:
                            continue
                        key = msg.key.decode("utf-8", "replace") if msg.key else ""
                        if key in wanted:
                            if msg.value:
                                found[key] = msg.value
                            else:
                                found.pop(key, None)
                for tp in list(pending):
                    if await self._consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        except TimeoutError as exc:
            raise SourceError(f"cannot restore state from {self.topic!r}: {exc}") from exc
        finally:
            self._consumer.unsubscribe()
        log.info(
            "state_loaded",
            topic=self.topic,
            keys=len(found),
            partitions=chosen,
            seconds=round(time.monotonic() - started, 3),
        )
        return found

    async def close(self) -> None:
        """Flush and disconnect; idempotent."""
        self._started = False
        await self._consumer.stop()
        await self._producer.stop()
