"""One batch through the pure stages: ingest (decode + normalize), detect, correlate.

Two shapes share the ingest path so every entry point answers a record the same way:

- :class:`Pipeline` detects and correlates in process (replay; one partition of state);
- :class:`DetectPipeline` is the stateless detect stage of the Kafka runtime: single-event
  alerts, plus the matches stateful rules need, routed for the correlate stage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog

from detector.app.ingest import Ingestor
from detector.app.metrics import count_matches, observe_events
from detector.detect import DetectionEngine, RuleSet, alert_for_match
from detector.detect.alerting import AlertPipeline, silent_rule_ids
from detector.detect.correlation.routing import MatchRouter
from detector.models import Alert, DeadLetter, Event, RawRecord, RoutedMatch, time_implausible
from detector.models.events import DETECTOR_SECTION, TIME_IMPLAUSIBLE

log = structlog.get_logger(__name__)


@dataclass
class BatchResult:
    """What one batch produced.

    ``matches`` are the routed matches for the correlate stage (detect stage only),
    ``progress`` the newest event time per source partition (``"topic/partition"``, for
    watermark heartbeats), ``earliest`` the earliest, and ``max_event_time`` the newest of
    them. Both cover every plausible event of the batch, routed or not.
    """

    alerts: list[Alert] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    events: int = 0
    matches: list[RoutedMatch] = field(default_factory=list)
    max_event_time: float | None = None
    progress: dict[str, float] = field(default_factory=dict)
    earliest: dict[str, float] = field(default_factory=dict)


#: Default bound of an event time ahead of its arrival (Kafka timestamp or reading clock).
MAX_AHEAD_SECONDS = 15 * 60.0
#: Default floor of a plausible event time: 2000-01-01T00:00:00Z.
MIN_EVENT_TIME = 946_684_800.0
#: Sample events named in one ``implausible_event_time`` warning.
IMPLAUSIBLE_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class TimeGuard:
    """Which event times are plausible: not more than ``max_ahead`` seconds after the
    record arrived (its Kafka timestamp, else ``clock()``) and not before ``floor``.

    An implausible event is still evaluated; it is flagged (``event.ingested`` and
    ``detector.time_implausible``), counted, kept out of every watermark and window, and
    its alerts say so. One forged ``eventTime: 9999-12-31`` then cannot blind the rules.
    """

    max_ahead: float = MAX_AHEAD_SECONDS
    floor: float = MIN_EVENT_TIME
    clock: Callable[[], float] = time.time

    def check(self, event: Event, record: RawRecord) -> bool:
        """Flag ``event`` when its time is implausible; whether it was flagged."""
        arrival = record.timestamp_ms / 1000 if record.timestamp_ms else self.clock()
        if event.timestamp > arrival + self.max_ahead:
            why = f"{event.timestamp - arrival:.0f} s after the record arrived"
        elif event.timestamp < self.floor:
            why = "before the floor of plausible event times"
        else:
            return False
        section = event.ecs.get("event")
        if not isinstance(section, dict):
            section = event.ecs["event"] = {}
        section["ingested"] = datetime.fromtimestamp(arrival, UTC).isoformat()
        detector = event.ecs.get(DETECTOR_SECTION)
        if not isinstance(detector, dict):
            detector = event.ecs[DETECTOR_SECTION] = {}
        detector[TIME_IMPLAUSIBLE] = why
        return True


class _Ingesting:
    """Per-topic ingestors: ``ingestors`` maps a topic to its :class:`Ingestor`; records
    of other topics (and file records) use ``default``. ``guard`` flags implausible
    event times."""

    def __init__(
        self,
        default: Ingestor | None = None,
        ingestors: Mapping[str, Ingestor] | None = None,
        guard: TimeGuard | None = None,
    ) -> None:
        self.default = default or Ingestor()
        self.ingestors = dict(ingestors or {})
        self.guard = guard or TimeGuard()
        #: Leave ECS documents to the engine, which builds them for matching events only
        #: (set by the pipelines whose rules read native fields only).
        self.pending = False
        #: Events flagged with an implausible time so far.
        self.implausible = 0

    def ingest(self, records: Iterable[RawRecord]) -> tuple[list[Event], list[DeadLetter]]:
        """Events and dead letters of ``records``, in input order.

        Implausible event times are logged once per call (a count and a few samples), not
        once per event: a flood of forged times must not turn into a flood of log lines.
        """
        events: list[Event] = []
        dead: list[DeadLetter] = []
        flagged = 0
        samples: list[dict[str, str | None]] = []
        # once per record: attribute look-ups hoisted out of the loop
        ingestors, default, pending, check = (
            self.ingestors,
            self.default,
            self.pending,
            self.guard.check,
        )
        for record in records:
            topic = record.origin.topic
            ingestor = ingestors.get(topic, default) if topic else default
            got, lost = ingestor.ingest(record, pending)
            for event in got:
                if check(event, record):
                    flagged += 1
                    if len(samples) < IMPLAUSIBLE_SAMPLES:
                        samples.append(
                            {
                                "event_id": event.id,
                                "origin": record.origin.describe(),
                                "reason": time_implausible(event),
                            }
                        )
            events += got
            if lost:
                dead += lost
        if flagged:
            self.implausible += flagged
            log.warning("implausible_event_time", count=flagged, samples=samples)
        return events, dead


class Pipeline(_Ingesting):
    """Ingest, then detect and correlate in process (stateful, synchronous)."""

    def __init__(
        self,
        ruleset: RuleSet,
        default: Ingestor | None = None,
        ingestors: Mapping[str, Ingestor] | None = None,
    ) -> None:
        super().__init__(default, ingestors)
        self.ruleset = ruleset
        self.detection = AlertPipeline(ruleset)
        self.pending = not ruleset.reads_ecs

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


class DetectPipeline(_Ingesting):
    """The detect stage: stateless, so any member may process any source partition.

    Single-event matches become alerts unless the rule is a silent correlation building
    block or a first-seen rule (as in :class:`~detector.detect.alerting.AlertPipeline`);
    every match a correlation or first-seen rule needs is routed by
    :class:`~detector.detect.correlation.routing.MatchRouter`.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        default: Ingestor | None = None,
        ingestors: Mapping[str, Ingestor] | None = None,
    ) -> None:
        super().__init__(default, ingestors)
        self.ruleset = ruleset
        self.engine = DetectionEngine(ruleset)
        self.pending = not ruleset.reads_ecs
        self.router = MatchRouter(
            [r.sigma for r in ruleset.rules], ruleset.correlations, rule_ids=dict(ruleset.names)
        )
        self.suppressed = silent_rule_ids(ruleset)

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Single-event alerts and routed matches of one batch, in arrival order."""
        events, dead = self.ingest(records)
        alerts: dict[str, Alert] = {}
        routed: list[RoutedMatch] = []
        # routed matches per source record: (offset, seq) orders a source partition's
        # matches so the correlate stage can drop re-sent ones
        seqs: dict[tuple[str | None, int | None, int | None], int] = {}
        progress: dict[str, float] = {}
        earliest: dict[str, float] = {}
        # the metrics of the batch, counted here and applied once (see observe_events)
        families: dict[str, int] = {}
        matched: dict[str, int] = {}
        names: dict[tuple[str, int | None], str] = {}  # (topic, partition) -> its name
        suppressed, route, evaluate = self.suppressed, self.router.route, self.engine.evaluate
        now = time.time()
        for event in events:
            families[event.family] = families.get(event.family, 0) + 1
            implausible = time_implausible(event) is not None
            origin = event.origin
            timestamp = event.timestamp
            if origin.topic is not None and not implausible:
                where = (origin.topic, origin.partition)
                source = names.get(where)
                if source is None:
                    source = names[where] = f"{origin.topic}/{origin.partition}"
                if timestamp > progress.get(source, -math.inf):
                    progress[source] = timestamp
                if timestamp < earliest.get(source, math.inf):
                    earliest[source] = timestamp
            for match in evaluate(event):
                rule_id = match.rule.id
                matched[rule_id] = matched.get(rule_id, 0) + 1
                if rule_id not in suppressed:
                    alert = alert_for_match(match)
                    alerts.setdefault(alert.id, alert)
                if implausible:  # evaluated for single-event rules only, never routed
                    continue
                for target, key, raw, ecs_values, raw_values in route(match):
                    position = (origin.topic, origin.partition, origin.offset)
                    seq = seqs.get(position, 0)
                    seqs[position] = seq + 1
                    routed.append(RoutedMatch(target, key, match, seq, raw, ecs_values, raw_values))
        observe_events(families, [now - event.timestamp for event in events])
        count_matches(matched)
        return BatchResult(
            alerts=list(alerts.values()),
            dead_letters=dead,
            events=len(events),
            matches=routed,
            max_event_time=max(progress.values(), default=None),
            progress=progress,
            earliest=earliest,
        )
