"""Replay: run the rules over historical files with in-memory state, in event-time order.

The embedded default of DESIGN.md: no Kafka, no search engine. Records are read from
files (JSON lines, whole-document JSON such as CloudTrail S3 delivery, ``.gz``) as streams,
ingested, put in event-time order by a bounded reorder buffer per file, merged by event
time, detected and correlated; the caller writes the alerts. Memory does not grow with
the input.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from detector.app.ingest import Ingestor
from detector.app.pipeline import Pipeline
from detector.app.settings import REORDER_EVENTS, REORDER_SECONDS
from detector.detect import RuleSet
from detector.models import Alert, DeadLetter, Event, RawRecord
from detector.sources.files import FileLimits, expand, read_records


@dataclass(frozen=True)
class ReorderBound:
    """How far out of event-time order one input may be: an event waits in its input's
    reorder buffer until it is ``seconds`` older than the input's newest event or more
    than ``events`` events wait. An event older than one already released is *late*: it
    goes on at once, and the stateful rules treat it as the runtime treats a too-late
    match (docs/runtime.md). ``ReorderBound.unbounded()`` is a complete sort."""

    seconds: float = REORDER_SECONDS
    events: int = REORDER_EVENTS

    @classmethod
    def unbounded(cls) -> ReorderBound:
        """No bound: every event of an input waits until its input ends."""
        return cls(math.inf, sys.maxsize)


@dataclass
class ReplayResult:
    """Alerts in event-time order plus what a summary needs."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    events: int = 0
    #: Events out of order by more than the reorder bound of their input (passed on late).
    late_events: int = 0
    #: Stateful-rule health over the run: events too late for any window, and groups
    #: evicted because a rule hit its state cap (both mean possibly missed alerts).
    too_late_events: int = 0
    evictions: int = 0

    def alerts_by_rule(self) -> Counter[tuple[str, str, str]]:
        """Alert counts keyed by (rule id, title, level)."""
        return Counter((a.rule.id, a.rule.title, a.rule.level) for a in self.alerts)


def replay(
    paths: Iterable[Path],
    ruleset: RuleSet,
    ingestor: Ingestor | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    reorder: ReorderBound | None = None,
) -> ReplayResult:
    """Replay ``paths`` through ``ruleset``, every file a stream.

    Each file is one input, put in event-time order by its own bounded reorder buffer;
    the inputs are merged by event time (time, then event id: the order the correlate
    stage applies). Memory holds the buffers and one batch per input, whatever the size
    of the input. ``on_progress(bytes_done, bytes_total, events)`` reports as it goes.
    """
    report = on_progress or (lambda done, total, events: None)
    bound = reorder or ReorderBound()
    pipeline = Pipeline(ruleset, default=ingestor)
    limits = FileLimits(max_record_bytes=pipeline.default.limits.max_bytes)
    result = ReplayResult()
    names = list(expand(paths))
    reading = _Reading(sizes={name: _size(name) for name in names})
    inputs = [
        _in_order(_events(name, pipeline, limits, result, reading), bound, result) for name in names
    ]
    merged = heapq.merge(*inputs, key=_order)
    seen: set[str] = set()
    while chunk := list(itertools.islice(merged, DETECT_CHUNK)):
        result.events += len(chunk)
        for alert in pipeline.detect(chunk):
            if alert.id not in seen:
                seen.add(alert.id)
                result.alerts.append(alert)
        report(reading.done, reading.total, result.events)
    for alert in pipeline.flush():
        if alert.id not in seen:
            seen.add(alert.id)
            result.alerts.append(alert)
    result.alerts.sort(key=lambda a: a.timestamp)
    for stats in (pipeline.detection.correlations.stats, pipeline.detection.first_seen.stats):
        result.too_late_events += stats.too_late_events
        result.evictions += stats.evictions
    return result


#: Events detected at a time between progress reports.
DETECT_CHUNK = 2_000


def _order(event: Event) -> tuple[float, str]:
    return event.timestamp, event.id


@dataclass
class _Reading:
    """Bytes of input read so far, for the progress bar."""

    sizes: dict[str, int]
    done: int = 0

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def _size(name: str) -> int:
    try:
        return Path(name).stat().st_size if name != "-" else 0
    except OSError:
        return 0


def _events(
    name: str, pipeline: Pipeline, limits: FileLimits, result: ReplayResult, reading: _Reading
) -> Iterator[Event]:
    """Events of one file in file order, a batch at a time; its records and dead letters
    are counted into ``result`` as they are read."""
    size = reading.sizes.get(name, 0)
    counted = 0
    for batch in _batches(read_records(name, limits)):
        raw = [item for item in batch if isinstance(item, RawRecord)]
        result.records += len(raw)
        got, lost = pipeline.ingest(raw)
        result.dead_letters.extend(_without_value(d) for d in (*lost, *_letters(batch)))
        # record bytes approximate the file's (exact for plain JSON lines)
        step = min(sum(len(r.value) + 1 for r in raw), size - counted)
        counted += step
        reading.done += step
        yield from got
    reading.done += size - counted


def _in_order(
    events: Iterable[Event], bound: ReorderBound, result: ReplayResult
) -> Iterator[Event]:
    """``events`` in (time, id) order through a reorder buffer of ``bound``; an event older
    than one already released is late: counted and passed on at once."""
    waiting: list[tuple[float, str, int, Event]] = []
    newest = -math.inf
    released: tuple[float, str] | None = None
    for seq, event in enumerate(events):
        key = (event.timestamp, event.id)
        if released is not None and key < released:
            result.late_events += 1
            yield event
            continue
        heapq.heappush(waiting, (event.timestamp, event.id, seq, event))
        newest = max(newest, event.timestamp)
        horizon = newest - bound.seconds
        while waiting and (waiting[0][0] <= horizon or len(waiting) > bound.events):
            time, ident, _, ready = heapq.heappop(waiting)
            released = (time, ident)
            yield ready
    while waiting:
        yield heapq.heappop(waiting)[3]


#: Raw bytes ingested at a time per input (one record more at most).
BATCH_BYTES = 1 << 20


def _batches(
    items: Iterable[RawRecord | DeadLetter], max_bytes: int = BATCH_BYTES
) -> Iterator[list[RawRecord | DeadLetter]]:
    """``items`` in lists holding at most about ``max_bytes`` of record bytes."""
    batch: list[RawRecord | DeadLetter] = []
    size = 0
    for item in items:
        batch.append(item)
        size += len(item.value)
        if size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _letters(batch: Iterable[RawRecord | DeadLetter]) -> list[DeadLetter]:
    return [item for item in batch if isinstance(item, DeadLetter)]


def _without_value(letter: DeadLetter) -> DeadLetter:
    """The letter without the record's bytes: replay reports reasons and counts, and
    keeping every bad record's bytes would hold the input in memory."""
    return replace(letter, value=b"") if letter.value else letter
