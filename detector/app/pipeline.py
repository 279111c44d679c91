"""One batch through the pure stages: ingest (decode + normalize), detect, correlate.

Shared by the Kafka runner and replay so both answer a record the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from detector.app.ingest import Ingestor
from detector.app.ruletest import AlertPipeline
from detector.detect import RuleSet
from detector.models import Alert, DeadLetter, Event, RawRecord


@dataclass
class BatchResult:
    """What one batch produced."""

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    events: int = 0


class Pipeline:
    """Ingest records with the ingestor of their topic, then detect and correlate.

    ``ingestors`` maps a topic name to its :class:`Ingestor`; records of other topics
    (and file records) use ``default``. Stateful (correlation windows), synchronous.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        default: Ingestor | None = None,
        ingestors: Mapping[str, Ingestor] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.default = default or Ingestor()
        self.ingestors = dict(ingestors or {})
        self.detection = AlertPipeline(ruleset)

    def ingest(self, records: Iterable[RawRecord]) -> tuple[list[Event], list[DeadLetter]]:
        """Events and dead letters of ``records``, in input order."""
        events: list[Event] = []
        dead: list[DeadLetter] = []
        for record in records:
            topic = record.origin.topic
            ingestor = self.ingestors.get(topic, self.default) if topic else self.default
            got, lost = ingestor.ingest(record)
            events.extend(got)
            dead.extend(lost)
        return events, dead

    def detect(self, events: Iterable[Event]) -> list[Alert]:
        """Alerts completed by ``events`` (fed in the given order), each id at most once."""
        alerts: dict[str, Alert] = {}
        for event in events:
            for alert in self.detection.process(event):
                alerts.setdefault(alert.id, alert)
        return list(alerts.values())

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Ingest, detect and correlate one batch in arrival order."""
        events, dead = self.ingest(records)
        return BatchResult(alerts=self.detect(events), dead_letters=dead, events=len(events))

    def flush(self) -> list[Alert]:
        """End of input: alerts of correlation windows still open."""
        return self.detection.flush()
