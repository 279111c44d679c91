"""Correlation state on a compacted Kafka topic (the changelog of the correlate stage).

The state of one matches partition is many records: one per group key or first-seen
term (the latest value of that key), and a meta record written last in each batch. A
batch's records go in one Kafka transaction (:meth:`KafkaChangelogStore.write`), and a
restore reads committed records only (``read_committed``) up to the high watermark taken
when it starts, waiting for transactions still open then. So a restore sees whole
batches: every key record of a committed batch and its meta record, and nothing of a
batch that did not commit. Compaction keeps the newest record per key; a record with no
value (a tombstone) deletes its key.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from detector.errors import SinkError, SourceError

log = structlog.get_logger(__name__)

#: Largest record the store writes and reads (the topic is created with this limit).
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: A state record: key and value (``None``: a tombstone).
Record = tuple[bytes, bytes | None]


class KafkaChangelogStore:
    """State records by key in ``topic`` (``cleanup.policy=compact``).

    :meth:`write` sends records to partition ``p`` modulo the topic's partition count
    (the input partition, so a restore reads one partition); :meth:`save` without
    ``partition`` lets the key's hash pick it, and :meth:`load` must be given the same
    ``partition``. ``transaction_timeout_ms`` bounds how long a transaction left open by
    a crashed writer delays a restore. Use :meth:`start` before and :meth:`close` after.
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
        transaction_timeout_ms: int = 30_000,
    ) -> None:
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.timeout_seconds = timeout_seconds
        self._client_id = client_id
        self._max_bytes = max_bytes
        self._security = dict(security or {})
        self._transaction_timeout_ms = transaction_timeout_ms
        self._producer = self._new_producer()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=max_bytes,
            fetch_max_bytes=max_bytes,
            **self._security,
        )
        # end offsets including records of open transactions (a restore waits for them)
        self._probe = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            **self._security,
        )
        self._partitions = 1
        self._started = False

    def _new_producer(self) -> AIOKafkaProducer:
        # A fresh transactional id per producer: a crashed writer's open transaction is
        # aborted by the broker after transaction_timeout_ms.
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self._client_id,
            transactional_id=f"{self._client_id}-{uuid.uuid4().hex}",
            transaction_timeout_ms=self._transaction_timeout_ms,
            acks="all",
            enable_idempotence=True,
            max_request_size=self._max_bytes,
            **self._security,
        )

    async def start(self) -> None:
        """Connect and learn the topic's partition count."""
        try:
            await self._producer.start()
            await self._consumer.start()
            await self._probe.start()
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

    async def write(self, records: Mapping[int, Sequence[Record]]) -> None:
        """Write ``records`` by topic partition, in order, in one transaction, and wait
        until it is committed. On failure nothing of it is visible to a restore, and the
        same call may be retried."""
        try:
            await self._producer.begin_transaction()
            for partition, batch in records.items():
                target = partition % self._partitions
                for key, value in batch:
                    await self._producer.send(self.topic, value, key=key, partition=target)
            await self._producer.commit_transaction()
        except Exception as exc:
            await self._renew_producer()
            raise SinkError(f"state topic {self.topic!r} unavailable: {exc}") from exc

    async def _renew_producer(self) -> None:
        """Replace the producer after a failed transaction (aborting it on the way, if
        the broker still lets us), so a retry starts from a clean transaction state."""
        old, self._producer = self._producer, self._new_producer()
        try:
            await old.stop()
        except Exception as exc:  # already broken; the broker aborts it after its timeout
            log.warning("state_producer_stop_failed", error=str(exc))
        try:
            await self._producer.start()
        except Exception as exc:
            raise SinkError(f"state topic {self.topic!r} unavailable: {exc}") from exc

    async def save(self, key: str, snapshot: bytes, partition: int | None = None) -> None:
        """Write ``snapshot`` under ``key`` and wait until Kafka acknowledged it."""
        await self.write({self.partition_for(key, partition): [(key.encode(), snapshot)]})

    async def load(self, key: str, partition: int | None = None) -> bytes | None:
        """The latest snapshot stored under ``key``, or ``None``."""
        return (await self.load_many([key], [self.partition_for(key, partition)])).get(key)

    async def load_many(
        self, keys: Iterable[str], partitions: Iterable[int] | None = None
    ) -> dict[str, bytes]:
        """The latest value of each of ``keys`` found in ``partitions`` (default: all)."""
        wanted = set(keys)
        found: dict[str, bytes] = {}

        def keep(key: bytes, value: bytes | None) -> None:
            name = key.decode("utf-8", "replace")
            if name in wanted:
                if value:
                    found[name] = value
                else:
                    found.pop(name, None)

        if wanted:
            await self.replay(
                partitions if partitions is not None else range(self._partitions), keep
            )
        return found

    async def replay(
        self, partitions: Iterable[int], handle: Callable[[bytes, bytes | None], None]
    ) -> int:
        """Call ``handle(key, value)`` for every committed record of ``partitions``, in
        topic order, from the beginning up to the high watermark taken when the call
        starts; returns the record count. Transactions open at the start are waited for
        (they commit or the broker aborts them), so the records handled are whole
        transactions. Raises :class:`SourceError` after ``timeout_seconds``."""
        chosen = sorted({p % self._partitions for p in partitions})
        tps = [TopicPartition(self.topic, p) for p in chosen]
        if not tps:
            return 0
        started = time.monotonic()
        count = 0
        try:
            ends = await self._probe.end_offsets(tps)
            self._consumer.assign(tps)
            await self._consumer.seek_to_beginning(*tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                if time.monotonic() - started > self.timeout_seconds:
                    raise TimeoutError(f"not read to its end in {self.timeout_seconds}s")
                polled = await self._consumer.getmany(*pending, timeout_ms=500)
                for tp, messages in polled.items():
                    end = ends[tp]
                    for msg in messages:
                        if msg.offset < end:
                            handle(msg.key or b"", msg.value)
                            count += 1
                for tp in list(pending):
                    if await self._consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        except TimeoutError as exc:
            raise SourceError(f"cannot restore state from {self.topic!r}: {exc}") from exc
        finally:
            self._consumer.unsubscribe()
        log.info(
            "state_read",
            topic=self.topic,
            records=count,
            partitions=chosen,
            seconds=round(time.monotonic() - started, 3),
        )
        return count

    async def close(self) -> None:
        """Flush and disconnect; idempotent."""
        self._started = False
        await self._consumer.stop()
        await self._probe.stop()
        await self._producer.stop()
