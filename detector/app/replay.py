"""Replay: run the rules over historical files with in-memory state, in event-time order.

The embedded default of DESIGN.md: no Kafka, no search engine. Records are read from
files (JSON lines, whole-document JSON such as CloudTrail S3 delivery, ``.gz``), ingested,
sorted by event time, detected and correlated; the caller writes the alerts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from detector.app.ingest import Ingestor
from detector.app.pipeline import Pipeline
from detector.detect import RuleSet
from detector.models import Alert, DeadLetter, Event, RawRecord
from detector.sources.files import iter_records

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

    ``on_progress(phase, done, total)`` reports the ``"normalizing"`` phase in records and
    the ``"detecting"`` phase in events (for a progress bar).
    """
    report = on_progress or (lambda phase, done, total: None)
    pipeline = Pipeline(ruleset, default=ingestor)
    records: list[RawRecord] = []
    dead: list[DeadLetter] = []
    for item in iter_records(paths):
        if isinstance(item, DeadLetter):
            dead.append(item)
        else:
            records.append(item)
    events: list[Event] = []
    for start, batch in _chunks(records):
        got, lost = pipeline.ingest(batch)
        events.extend(got)
        dead.extend(lost)
        report("normalizing", start + len(batch), len(records))
    events.sort(key=lambda e: e.timestamp)
    result = ReplayResult(dead_letters=dead, records=len(records), events=len(events))
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


def _chunks(items: Sequence[T]) -> Iterator[tuple[int, Sequence[T]]]:
    """About 200 slices of ``items`` with their start index: enough for a smooth bar."""
    step = max(1, len(items) // 200)
    for start in range(0, len(items), step):
        yield start, items[start : start + step]
