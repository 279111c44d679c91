"""Replay: run the rules over historical files with in-memory state, in event-time order.

The embedded default of DESIGN.md: no Kafka, no search engine. Records are read from
files (JSON lines, whole-document JSON such as CloudTrail S3 delivery, ``.gz``), ingested,
sorted by event time, detected and correlated; the caller writes the alerts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from detector.app.ingest import Ingestor
from detector.app.pipeline import Pipeline
from detector.detect import RuleSet
from detector.models import Alert, DeadLetter, Event, RawRecord
from detector.sources.files import FileLimits, expand, read_records

T = TypeVar("T")


@dataclass
class ReplayResult:
    """Alerts in event-time order plus what a summary needs."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    events: int = 0
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
    on_progress: Callable[[str, int, int], None] | None = None,
) -> ReplayResult:
    """Replay ``paths`` through ``ruleset``.

    ``on_progress(phase, done, total)`` reports the ``"normalizing"`` phase in files and
    the ``"detecting"`` phase in events (for a progress bar).
    """
    report = on_progress or (lambda phase, done, total: None)
    pipeline = Pipeline(ruleset, default=ingestor)
    limits = FileLimits(max_record_bytes=pipeline.default.limits.max_bytes)
    dead: list[DeadLetter] = []
    events: list[Event] = []
    records = 0
    names = list(expand(paths))
    # File after file, a batch at a time: the raw bytes held are one batch of one file,
    # whatever the number and size of the files (the events are kept for the sort).
    for done, name in enumerate(names, start=1):
        for batch in _batches(read_records(name, limits)):
            raw = [item for item in batch if isinstance(item, RawRecord)]
            records += len(raw)
            got, lost = pipeline.ingest(raw)
            events.extend(got)
            dead.extend(_without_value(d) for d in (*lost, *_letters(batch)))
        report("normalizing", done, len(names))
    events.sort(key=lambda e: (e.timestamp, e.id))  # the order the correlate stage applies
    result = ReplayResult(dead_letters=dead, records=records, events=len(events))
    seen: set[str] = set()
    for start, chunk in _chunks(events):
        for alert in pipeline.detect(chunk):
            if alert.id not in seen:
                seen.add(alert.id)
                result.alerts.append(alert)
        report("detecting", start + len(chunk), len(events))
    for alert in pipeline.flush():
        if alert.id not in seen:
            seen.add(alert.id)
            result.alerts.append(alert)
    result.alerts.sort(key=lambda a: a.timestamp)
    for stats in (pipeline.detection.correlations.stats, pipeline.detection.first_seen.stats):
        result.too_late_events += stats.too_late_events
        result.evictions += stats.evictions
    return result


#: Raw bytes ingested at a time (one record more at most): the bound on input held.
BATCH_BYTES = 8 << 20


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


def _chunks(items: Sequence[T]) -> Iterator[tuple[int, Sequence[T]]]:
    """About 200 slices of ``items`` with their start index: enough for a smooth bar."""
    step = max(1, len(items) // 200)
    for start in range(0, len(items), step):
        yield start, items[start : start + step]
