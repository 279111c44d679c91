"""Ports: the protocols adapters implement and the app layer wires together.

Only the sink is a port: every alert sink implements it and the runner writes through it.
Sources and state stores have one adapter each (Kafka), whose richer interface (pause,
resume, assignment; a changelog per partition) the runtime uses directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from detector.models.alerts import Alert


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
