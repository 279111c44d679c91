"""Per-source-partition progress of a detect member, for its watermark heartbeats.

For every source partition the member owns, a heartbeat says how far event time got (the
newest plausible event time routed) and whether the partition is **idle**: no record for
``idle_after`` seconds of wall-clock time *and* caught up with the partition's end. Only
an idle partition stops holding the watermark back, so a quiet topic cannot stall alerts
while a partition with a backlog (paused by backpressure, or waiting for its new owner)
can never be skipped over. It also carries, per partition, the earliest plausible event
time seen there, on which the correlate stage anchors first-seen ``learn`` periods.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping

Progress = dict[str, tuple[float | None, bool]]


class SourceTracker:
    """Event-time progress and idleness of the source partitions one member owns."""

    def __init__(self, idle_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_after = idle_after
        self.clock = clock
        self.times: dict[str, float] = {}
        #: Per source partition, the earliest plausible event time seen (never forgotten).
        self.earliest: dict[str, float] = {}
        self._last_record: dict[str, float] = {}
        self._sent: tuple[Progress, dict[str, float]] | None = None

    def observe(
        self,
        sources: Collection[str],
        times: Mapping[str, float],
        earliest: Mapping[str, float] | None = None,
    ) -> None:
        """A batch held records of ``sources``; ``times`` their newest plausible event times,
        ``earliest`` their earliest."""
        now = self.clock()
        for source in sources:
            self._last_record[source] = now
        for source, newest in times.items():
            if newest > self.times.get(source, float("-inf")):
                self.times[source] = newest
        for source, first in (earliest or {}).items():
            if first < self.earliest.get(source, float("inf")):
                self.earliest[source] = first

    def quiet(self, assigned: Collection[str]) -> list[str]:
        """Assigned partitions without a record for ``idle_after`` (idle if caught up)."""
        now = self.clock()
        quiet = []
        for source in assigned:
            last = self._last_record.setdefault(source, now)  # newly assigned: from now
            if now - last >= self.idle_after:
                quiet.append(source)
        return quiet

    def progress(self, assigned: Collection[str], caught_up: Collection[str]) -> Progress:
        """The heartbeat entries of ``assigned``: ``(newest time or None, idle)``."""
        quiet = set(self.quiet(assigned))
        return {
            source: (self.times.get(source), source in quiet and source in caught_up)
            for source in sorted(assigned)
        }

    def earliest_of(self, assigned: Collection[str]) -> dict[str, float]:
        """The earliest plausible event time seen on each of ``assigned`` (those with one)."""
        return {s: self.earliest[s] for s in sorted(assigned) if s in self.earliest}

    def changed(self, progress: Progress, earliest: Mapping[str, float] | None = None) -> bool:
        """Whether ``progress`` or ``earliest`` differ from the last ones sent (then they are
        the new last)."""
        sent = (progress, dict(earliest or {}))
        if sent == self._sent:
            return False
        self._sent = sent
        return True
