"""Event-time order for the stateful engines: per-source watermarks and a reorder buffer.

Stream processors (Flink, Kafka Streams' stream time) define progress per input partition
and combine it with **min** over the inputs that feed a state. :class:`StreamClock` does
that for one state partition: each *source* (a source ``topic/partition``) reports the
newest event time it routed and whether it is idle; the watermark is the minimum over
the active sources minus the allowed lateness. An idle source (no records for a while and
caught up) stops holding the watermark back and holds it again once it sends records.
The clock also keeps the **origin**: the earliest plausible event time any source
reported, which first-seen ``learn`` periods start from (the same in every partition).

:class:`PendingMatches` holds routed matches until the watermark passes them and gives
them back in event-time order, ties broken by a stable key (event id, then origin and
routing position). Fed this way, the engines see exactly the sequence an in-order replay
gives them, so count thresholds and first-seen decisions do not depend on arrival order.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from typing import NamedTuple

from detector.models import RoutedMatch


class SourceProgress(NamedTuple):
    """What one source partition reported: newest event time (``None``: none yet) and
    whether it is idle."""

    time: float | None
    idle: bool


OrderKey = tuple[float, str, str, int, int, int]
#: Where a held match was read: the input offset of its record and its index in it.
Position = tuple[int, int]


def order_key(routed: RoutedMatch) -> OrderKey:
    """Where ``routed`` sits in event-time order: time, event id, origin, routing position.

    Replay sorts its events by ``(time, event id)`` and evaluates each event's matches in
    rule order, which ``seq`` preserves, so both runtimes see the same sequence.
    """
    event = routed.match.event
    origin = event.origin
    return (
        event.timestamp,
        event.id,
        origin.topic or origin.path or "",
        -1 if origin.partition is None else origin.partition,
        -1 if origin.offset is None else origin.offset,
        routed.seq,
    )


class StreamClock:
    """The watermark of one state partition, from the progress of every source feeding it.

    ``stale_after`` (wall-clock seconds, 0: never) treats a source as idle when other
    sources kept reporting for that long after its last report, so a source partition that
    no longer exists cannot stall the partition for good. It is measured against the
    newest report, not the clock: an outage of the broker or of the whole detect stage
    makes nothing stale. ``now`` arguments are wall-clock seconds from the caller (the
    engine itself never reads a clock).
    """

    def __init__(self, allowed_lateness: float, *, stale_after: float = 0.0) -> None:
        self.allowed_lateness = allowed_lateness
        self.stale_after = stale_after
        self.sources: dict[str, SourceProgress] = {}
        self._heard: dict[str, float] = {}
        self._latest = -math.inf
        #: The earliest event time any source ever reported (``inf``: none yet).
        self.origin = math.inf

    def report_earliest(self, earliest: Mapping[str, float]) -> None:
        """A heartbeat's earliest event time per source: the origin only moves back."""
        self.origin = min(self.origin, *earliest.values()) if earliest else self.origin

    def report(self, source: str, progress: SourceProgress, now: float) -> None:
        """A heartbeat's entry for ``source``; progress only moves forward."""
        old = self.sources.get(source)
        time = progress.time
        if old is not None and old.time is not None and (time is None or time < old.time):
            time = old.time
        self.sources[source] = SourceProgress(time, progress.idle)
        self._heard[source] = now
        self._latest = max(self._latest, now)

    def heard(self, source: str, now: float) -> None:
        """A record from ``source`` arrived: it is active (it holds the watermark again)."""
        old = self.sources.get(source)
        self.sources[source] = SourceProgress(None if old is None else old.time, False)
        self._heard[source] = now
        self._latest = max(self._latest, now)

    def watermark(self) -> float:
        """Min over the active sources' progress minus the allowed lateness; when every
        source is idle, the newest progress minus the allowed lateness.

        ``-inf`` while no source is known or an active source has not reported a time.
        """
        active: list[float] = []
        known: list[float] = []
        for source, progress in self.sources.items():
            silent = self._latest - self._heard.get(source, self._latest)
            stale = self.stale_after > 0 and silent > self.stale_after
            if progress.time is not None:
                known.append(progress.time)
            if progress.idle or stale:
                continue
            if progress.time is None:
                return -math.inf
            active.append(progress.time)
        if active:
            return min(active) - self.allowed_lateness
        return max(known) - self.allowed_lateness if known else -math.inf

    def drained(self) -> float | None:
        """The newest progress when every known source is idle (all input is in), else
        ``None``: then nothing needs to wait for the watermark."""
        times = [p.time for p in self.sources.values() if p.time is not None]
        if not times or not all(p.idle for p in self.sources.values()):
            return None
        return max(times)

    def snapshot(self) -> dict[str, list[float | bool | None]]:
        """JSON-ready progress of every source (wall-clock facts are not kept)."""
        return {s: [p.time, p.idle] for s, p in self.sources.items()}

    def restore(self, data: Mapping[str, list[float | bool | None]], now: float) -> None:
        """Load :meth:`snapshot` output; ``ValueError`` when malformed."""
        sources: dict[str, SourceProgress] = {}
        try:
            for source, (time, idle) in data.items():
                if time is not None and not isinstance(time, int | float):
                    raise ValueError(f"progress time of {source!r} is not a number")
                sources[str(source)] = SourceProgress(
                    None if time is None else float(time), bool(idle)
                )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"invalid source progress: {exc}") from exc
        self.sources = sources
        self._heard = dict.fromkeys(sources, now)
        self._latest = now if sources else -math.inf


class PendingMatches:
    """Routed matches waiting for the watermark, released in event-time order.

    Each held match remembers its position in the input: the offset of its record in the
    matches partition and its index in that record (a record may hold several matches).
    A checkpoint keeps only those positions: the held matches are read again from the
    input after a restore (:meth:`positions`), so a checkpoint costs little however much
    is held. Memory is bounded by the matches of one watermark lag: those newer than the
    slowest active source's progress minus the allowed lateness.
    """

    def __init__(self) -> None:
        # (order, offset, index, match): positions are unique, so items always compare
        self._heap: list[tuple[OrderKey, int, int, RoutedMatch]] = []
        # held matches per input offset: the oldest offset without sorting the heap
        self._held: dict[int, int] = {}
        # matches in the record at each held offset: a record held whole is one number
        self._sizes: dict[int, int] = {}
        # per held offset, the indices pushed and those released since: a checkpoint lists
        # the held indices of partly released records without walking the whole heap
        self._pushed: dict[int, list[int]] = {}
        self._gone: dict[int, list[int]] = {}
        #: Matches older than this were released; a newer arrival below it is too late.
        self.released = -math.inf

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, routed: RoutedMatch, offset: int, index: int = 0, size: int = 1) -> bool:
        """Hold ``routed``, the ``index``-th of the ``size`` matches of the input record at
        ``offset``; ``False`` (not held) when the watermark already passed it."""
        if routed.match.event.timestamp < self.released:
            return False
        heapq.heappush(self._heap, (order_key(routed), offset, index, routed))
        self._held[offset] = self._held.get(offset, 0) + 1
        self._sizes[offset] = size
        pushed = self._pushed.get(offset)
        if pushed is None:
            self._pushed[offset] = [index]
        else:
            pushed.append(index)
        return True

    def release(self, watermark: float, *, drain: bool = False) -> list[RoutedMatch]:
        """Matches older than ``watermark`` (every match with ``drain``), in order; the
        buffer keeps the rest. Only ``watermark`` makes later arrivals too late."""
        heap = self._heap
        held = self._held
        self.released = max(self.released, watermark)
        out: list[RoutedMatch] = []
        gone = self._gone
        while heap and (drain or heap[0][0][0] < self.released):
            _, offset, index, routed = heapq.heappop(heap)
            left = held[offset] - 1
            if left:
                held[offset] = left
                gone.setdefault(offset, []).append(index)
            else:
                del held[offset]
                del self._sizes[offset]
                del self._pushed[offset]
                gone.pop(offset, None)
            out.append(routed)
        return out

    def oldest(self) -> int | None:
        """The input offset of the oldest record holding a held match."""
        return min(self._held) if self._held else None

    def offsets(self) -> list[int]:
        """Input offsets of the records holding held matches, ascending."""
        return sorted(self._held)

    def positions(self) -> list[int | Position]:
        """Input positions of the held matches, ascending: the offset alone for a record
        whose matches are all held, ``(offset, index)`` for each held match of others."""
        out: list[int | Position] = []
        for offset in sorted(self._held):
            if self._held[offset] == self._sizes[offset]:
                out.append(offset)
            else:
                gone = set(self._gone.get(offset, ()))
                out.extend((offset, i) for i in sorted(self._pushed[offset]) if i not in gone)
        return out

    def snapshot(self) -> dict[str, object]:
        """JSON-ready: the release mark and the input positions of the held matches."""
        released = self.released if math.isfinite(self.released) else None
        offsets = [p if isinstance(p, int) else list(p) for p in self.positions()]
        return {"released": released, "offsets": offsets}

    @staticmethod
    def parse(data: object) -> tuple[float, dict[int, set[int] | None]]:
        """``(release mark, held matches)`` of :meth:`snapshot` output: per input offset,
        the indices of its held matches, ``None`` for all of them (a bare offset, as
        older checkpoints wrote). ``ValueError`` when malformed."""
        if not isinstance(data, dict):
            raise ValueError("invalid pending matches: not an object")
        try:
            released, items = data["released"], data["offsets"]
            mark = -math.inf if released is None else float(released)
            held: dict[int, set[int] | None] = {}
            for item in items:
                if isinstance(item, list):
                    offset, index = int(item[0]), int(item[1])
                    indices = held.setdefault(offset, set())
                    if indices is not None:
                        indices.add(index)
                else:
                    held[int(item)] = None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"invalid pending matches: {exc!r}") from exc
        return mark, held
