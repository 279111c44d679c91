"""Producer of the internal matches topic: routed matches and watermark heartbeats.

Routed matches are keyed by ``<target>`` + ``\\x1f`` + group key, so Kafka's partitioner
sends every match of one group of one stateful rule to one partition (and one correlate
member). Heartbeats go to every partition explicitly so each partition's watermark moves
on event time even when no match reaches it. The producer is idempotent with
``acks=all``: :meth:`write` returns only when every record is acknowledged, and records
of one partition keep their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer

from detector.errors import SinkError
from detector.models import RoutedMatch, Watermark, encode_routed, encode_watermark

log = structlog.get_logger(__name__)

#: Largest match record (an event with its native record); the broker default is 1 MiB.
MAX_RECORD_BYTES = 8 * 1024 * 1024


def record_key(routed: RoutedMatch) -> bytes:
    """The Kafka key of a routed match: target and group key."""
    return f"{routed.target}\x1f{routed.key}".encode()


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

    async def write(self, matches: Sequence[RoutedMatch]) -> None:
        """Send every routed match and wait for all acknowledgements."""
        if not matches:
            return
        try:
            futures = [
                await self._producer.send(self.topic, value=encode_routed(m), key=record_key(m))
                for m in matches
            ]
            for future in futures:
                await future
        except Exception as exc:
            raise SinkError(f"matches topic {self.topic!r} unavailable: {exc}") from exc

    async def heartbeat(
        self,
        sources: dict[str, tuple[float | None, bool]],
        earliest: dict[str, float] | None = None,
    ) -> None:
        """Tell every partition the progress of this member's source partitions:
        ``{"topic/partition": (newest plausible event time or None, idle)}``, and the
        earliest plausible event time seen on each (``{"topic/partition": time}``)."""
        newest = max((t for t, _ in sources.values() if t is not None), default=0.0)
        try:
            partitions = await self._producer.partitions_for(self.topic)
            value = encode_watermark(Watermark(newest, self.member, sources, earliest or {}))
            futures = [
                await self._producer.send(self.topic, value=value, partition=p)
                for p in sorted(partitions)
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
