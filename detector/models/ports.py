"""Ports: the protocols adapters implement and the app layer wires together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol, runtime_checkable

from detector.models.alerts import Alert
from detector.models.records import RawRecord


@runtime_checkable
class Source(Protocol):
    """Yields batches of raw records; ``commit`` acknowledges everything yielded so far."""

    def batches(self) -> AsyncIterator[Sequence[RawRecord]]:
        """Batches of records in arrival order; ends when the source is exhausted or stopped."""
        ...

    async def commit(self) -> None:
        """Mark every record of the batches yielded so far as processed."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...


@runtime_checkable
class Sink(Protocol):
    """Makes alerts durable; ``write`` returns only when every alert is stored.

    Writing an alert whose id is already stored is a success (idempotent sinks).
    """

    async def write(self, alerts: Sequence[Alert]) -> None:
        """Store ``alerts``; raise :class:`detector.errors.SinkError` if they are not durable."""
        ...

    async def close(self) -> None:
        """Flush and release connections; idempotent."""
        ...


@runtime_checkable
class StateStore(Protocol):
    """Persists engine state snapshots per key (e.g. per Kafka partition)."""

    async def load(self, key: str) -> bytes | None:
        """The last snapshot stored under ``key``, or ``None``."""
        ...

    async def save(self, key: str, snapshot: bytes) -> None:
        """Durably store ``snapshot`` under ``key``."""
        ...
