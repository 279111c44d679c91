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
from detector.detect.correlation import CorrelationEngine
from detector.models import Alert, DeadLetter, Event, RawRecord, time_implausible
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
    """What a summary needs; :func:`replay` also keeps every alert, in event-time order."""

    #: Every alert (:func:`replay` only: :class:`Replay` streams them and keeps none).
    alerts: list[Alert] = field(default_factory=list)
    #: The first :data:`DEAD_LETTER_SAMPLES` dead letters (without the record bytes).
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: Dead letters in all, by ``stage/reason``.
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    records: int = 0
    events: int = 0
    #: Events out of order by more than the reorder bound of their input (passed on late).
    late_events: int = 0
    #: Stateful-rule health over the run: events too late for any window, and groups
    #: evicted because a rule hit its state cap (both mean possibly missed alerts).
    too_late_events: int = 0
    evictions: int = 0
    #: Alerts by (rule id, title, level), each alert id once.
    fired: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    @property
    def alert_count(self) -> int:
        """Alerts raised (each id once)."""
        return sum(self.fired.values())

    @property
    def dead_letter_count(self) -> int:
        """Dead letters in all (:attr:`dead_letters` keeps only the first ones)."""
        return sum(self.dead_letter_reasons.values())

    def alerts_by_rule(self) -> Counter[tuple[str, str, str]]:
        """Alert counts keyed by (rule id, title, level)."""
        return self.fired

    def add_dead_letters(self, letters: Iterable[DeadLetter]) -> None:
        """Count ``letters``; keep the first :data:`DEAD_LETTER_SAMPLES` without their bytes."""
        for letter in letters:
            self.dead_letter_reasons[f"{letter.stage}/{letter.reason}"] += 1
            if len(self.dead_letters) < DEAD_LETTER_SAMPLES:
                self.dead_letters.append(_without_value(letter))


#: Dead letters a replay keeps as samples (all are counted).
DEAD_LETTER_SAMPLES = 1_000


@dataclass(frozen=True)
class ReplayStep:
    """The alerts one chunk of events decided (each id once, in the order decided) and
    the event-time watermark after it: the newest time of a plausible event so far
    (``inf`` after the end). A later alert of a rule is at most ``holds[rule id]``
    (:attr:`Replay.holds`) older than the watermark, unless a late event raised it."""

    alerts: list[Alert]
    watermark: float


class Replay:
    """One replay of ``paths`` through ``ruleset`` as a stream of :class:`ReplayStep`.

    Each file is one input, put in event-time order by its own bounded reorder buffer;
    the inputs are merged by event time (time, then event id: the order the correlate
    stage applies). Memory holds the buffers, one batch per input, the engines' bounded
    state and the ids of recent alerts, whatever the size of the input; alerts are
    handed on, never kept. :attr:`result` holds the counts.
    """

    def __init__(
        self,
        paths: Iterable[Path],
        ruleset: RuleSet,
        ingestor: Ingestor | None = None,
        reorder: ReorderBound | None = None,
    ) -> None:
        self.paths = list(paths)
        self.bound = reorder or ReorderBound()
        self.pipeline = Pipeline(ruleset, default=ingestor)
        self.result = ReplayResult()
        #: Seconds of event time an alert of a rule can lag the watermark (rules absent: 0).
        self.holds = alert_holds(self.pipeline.detection.correlations)
        self.recent = RecentIds()

    def steps(
        self, on_progress: Callable[[int, int, int], None] | None = None
    ) -> Iterator[ReplayStep]:
        """Run the replay; ``on_progress(bytes_done, bytes_total, events)`` reports as it goes."""
        report = on_progress or (lambda done, total, events: None)
        pipeline, result = self.pipeline, self.result
        limits = FileLimits(max_record_bytes=pipeline.default.limits.max_bytes)
        names = list(expand(self.paths))
        reading = _Reading(sizes={name: _size(name) for name in names})

        def opened(name: str) -> Iterator[Event]:
            return _in_order(_events(name, pipeline, limits, result, reading), self.bound, result)

        # a file's events come after its first one, less the reorder bound, unless late
        starts = [_first_time(name, pipeline, limits) - self.bound.seconds for name in names]
        merged = _merge(names, starts, opened, result)
        watermark = -math.inf
        while chunk := list(itertools.islice(merged, DETECT_CHUNK)):
            result.events += len(chunk)
            alerts = self._new(pipeline.detect(chunk))
            plausible = [e.timestamp for e in chunk if not time_implausible(e)]
            watermark = max(watermark, *plausible) if plausible else watermark
            self.recent.forget(watermark)
            yield ReplayStep(alerts, watermark)
            report(reading.done, reading.total, result.events)
        last = self._new(pipeline.flush())
        for stats in (pipeline.detection.correlations.stats, pipeline.detection.first_seen.stats):
            result.too_late_events += stats.too_late_events
            result.evictions += stats.evictions
        self.recent.forget(math.inf)
        yield ReplayStep(last, math.inf)

    def _new(self, alerts: Iterable[Alert]) -> list[Alert]:
        """``alerts`` whose ids were not raised before, counted."""
        new = [
            a
            for a in alerts
            if self.recent.add(a.id, a.timestamp.timestamp() + self.holds.get(a.rule.id, 0.0))
        ]
        self.result.fired.update((a.rule.id, a.rule.title, a.rule.level) for a in new)
        return new


class RecentIds:
    """Alert ids already raised, each kept until the watermark passes its ``until``.

    Alert ids are deterministic (rule and event id, or rule, group and window start), so
    an id comes again only for the same evidence: a duplicate record, which the merge by
    (time, event id) puts next to the first, or a window the engines decide again; both
    fall within the rule's hold of the alert's time. Memory holds the ids of alerts of
    the last hold of event time, not of the whole input.
    """

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._until)

    def add(self, ident: str, until: float) -> bool:
        """Remember ``ident`` until ``until``; False if it is remembered already."""
        if ident in self._until:
            return False
        self._until[ident] = until
        heapq.heappush(self._expiry, (until, ident))
        return True

    def forget(self, watermark: float) -> None:
        """Drop the ids kept until before ``watermark``."""
        expiry = self._expiry
        while expiry and expiry[0][0] < watermark:
            del self._until[heapq.heappop(expiry)[1]]


def alert_holds(correlations: CorrelationEngine) -> dict[str, float]:
    """Per correlation rule id: how far (seconds of event time) behind the watermark its
    alert can be when raised: the allowed lateness plus its timespan and those of the
    correlations it chains (a window is decided when the watermark passes its end, and
    its alert carries the time of its last event). Single-event and first-seen alerts
    carry the time of the event that raises them: no hold."""
    specs = {spec.info.id: spec for spec in correlations.specs}
    longest = max((spec.timespan for spec in specs.values()), default=0.0)

    def span(rule: str, depth: int) -> float:
        spec = specs[rule]
        inner = [
            span(ref.key, depth + 1) if ref.key in specs and depth < len(specs) else longest
            for ref in spec.refs
            if ref.chained
        ]
        return spec.timespan + max(inner, default=0.0)

    return {rule: correlations.allowed_lateness + span(rule, 0) for rule in specs}


def replay(
    paths: Iterable[Path],
    ruleset: RuleSet,
    ingestor: Ingestor | None = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    reorder: ReorderBound | None = None,
) -> ReplayResult:
    """Replay ``paths`` through ``ruleset`` (see :class:`Replay`) and keep every alert,
    sorted by event time: for tests and small inputs (the ``detector replay`` command
    streams them to its output instead)."""
    run = Replay(paths, ruleset, ingestor, reorder)
    for step in run.steps(on_progress):
        run.result.alerts.extend(step.alerts)
    run.result.alerts.sort(key=lambda a: a.timestamp)
    return run.result


#: Events detected at a time between progress reports.
DETECT_CHUNK = 2_000


def _order(event: Event) -> tuple[float, str]:
    return event.timestamp, event.id


def _merge(
    names: list[str],
    starts: list[float],
    opened: Callable[[str], Iterator[Event]],
    result: ReplayResult,
) -> Iterator[Event]:
    """The events of every input merged by (time, event id), ties in input order.

    Input ``i`` is opened (read, buffered) only once the merge reaches ``starts[i]``, the
    earliest time it can give an event that is not late: a folder of files consecutive in
    time holds one or two files open, not all. An event older than one already merged
    (late in its input, or earlier than its file's start by more than the reorder bound)
    is passed on at once; those not counted late by their input are counted here.
    """
    pending = sorted(zip(starts, range(len(names)), strict=True), reverse=True)
    heads: list[tuple[float, str, int, Event, Iterator[Event]]] = []
    last: list[tuple[float, str] | None] = [None] * len(names)
    merged: tuple[float, str] | None = None

    def push(index: int, events: Iterator[Event]) -> None:
        event = next(events, None)
        if event is not None:
            heapq.heappush(heads, (event.timestamp, event.id, index, event, events))

    while True:
        while pending and (not heads or pending[-1][0] <= heads[0][0]):
            _, index = pending.pop()
            push(index, opened(names[index]))
        if not heads:
            return
        time, ident, index, event, events = heapq.heappop(heads)
        key = (time, ident)
        previous = last[index]
        if merged is not None and key < merged and (previous is None or key >= previous):
            result.late_events += 1  # in order in its input, not in the merge
        last[index] = key if previous is None else max(previous, key)
        merged = key if merged is None else max(merged, key)
        yield event
        push(index, events)


def _first_time(name: str, pipeline: Pipeline, limits: FileLimits) -> float:
    """The earliest plausible event time of the first record of file ``name`` (read
    apart, counted nowhere); ``-inf`` when there is none or for stdin."""
    if name == "-":
        return -math.inf
    reader = read_records(name, limits)
    record = next((r for r in reader if isinstance(r, RawRecord)), None)
    reader.close()
    if record is None:
        return -math.inf
    events, _ = pipeline.default.ingest(record)
    times = [e.timestamp for e in events if not pipeline.guard.check(e, record)]
    return min(times, default=-math.inf)


@dataclass
class _Reading:
    """Bytes of each input read so far (compressed bytes for gzip), for the progress bar."""

    sizes: dict[str, int]
    at: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def done(self) -> int:
        return sum(self.at.values())

    def follow(self, name: str) -> Callable[[int], None]:
        """The ``on_read`` callback of input ``name``."""

        def on_read(file_bytes: int) -> None:
            self.at[name] = file_bytes

        return on_read


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
    for batch in _batches(read_records(name, limits, reading.follow(name))):
        raw = [item for item in batch if isinstance(item, RawRecord)]
        result.records += len(raw)
        got, lost = pipeline.ingest(raw)
        result.add_dead_letters((*lost, *_letters(batch)))
        yield from got


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
