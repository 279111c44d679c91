"""Replay: run the rules over historical files with in-memory state, in event-time order.

The embedded default of DESIGN.md: no Kafka, no search engine. Records are read from
files (JSON lines, whole-document JSON such as CloudTrail S3 delivery, ``.gz``), ingested,
sorted by event time, detected and correlated; the caller writes the alerts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from detector.app.ingest import Ingestor
from detector.app.pipeline import Pipeline
from detector.detect import RuleSet
from detector.models import Alert, DeadLetter
from detector.sources.files import iter_records


@dataclass
class ReplayResult:
    """Alerts in event-time order plus what a summary needs."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    events: int = 0

    def alerts_by_rule(self) -> Counter[tuple[str, str, str]]:
        """Alert counts keyed by (rule id, title, level)."""
        return Counter((a.rule.id, a.rule.title, a.rule.level) for a in self.alerts)


def replay(
    paths: Iterable[Path],
    ruleset: RuleSet,
    ingestor: Ingestor | None = None,
    on_event: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Replay ``paths`` through ``ruleset``.

    ``on_event(done, total)`` is called as events are evaluated (for a progress bar).
    """
    pipeline = Pipeline(ruleset, default=ingestor)
    records = list(iter_records(paths))
    events, dead = pipeline.ingest(records)
    events.sort(key=lambda e: e.timestamp)
    result = ReplayResult(dead_letters=dead, records=len(records), events=len(events))
    step = max(1, len(events) // 200)
    seen: set[str] = set()
    for start in range(0, len(events), step):
        for alert in pipeline.detect(events[start : start + step]):
            if alert.id not in seen:
                seen.add(alert.id)
                result.alerts.append(alert)
        if on_event is not None:
            on_event(min(start + step, len(events)), len(events))
    for alert in pipeline.flush():
        if alert.id not in seen:
            seen.add(alert.id)
            result.alerts.append(alert)
    result.alerts.sort(key=lambda a: a.timestamp)
    return result
