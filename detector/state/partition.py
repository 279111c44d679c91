"""The state of one matches-topic partition of the correlate stage, free of Kafka I/O.

A :class:`PartitionState` holds one :class:`CorrelationEngine` per correlation unit and
one :class:`FirstSeenEngine`, the duplicate filter, the per-source watermark
(:class:`StreamClock`) and the reorder buffer (:class:`PendingMatches`). Routed matches
wait in the buffer until the watermark passes them and are then applied in event-time
order, so the alerts equal those of an in-order replay whatever the arrival order.
After each batch :meth:`PartitionState.changelog` gives the state-topic records of what
the batch changed: one record per changed group key or first-seen term (``None``, a
tombstone, for a removed one), then the partition's meta record (the input offset, the
clock, the duplicate filter, the input offsets of the buffered matches and the engines'
counters). After a restore the buffered matches are read again from the input
(:meth:`PartitionState.resume_offset`), so the meta record does not grow with the
buffer. Whole-state :class:`Checkpoint` values of earlier versions still restore.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import orjson

from detector.detect import RuleSet
from detector.detect.correlation import CorrelationEngine, EngineStats, FirstSeenEngine
from detector.detect.correlation.ordering import PendingMatches, SourceProgress, StreamClock
from detector.detect.correlation.routing import MatchRouter
from detector.models import Alert, MatchBatch, RoutedMatch, Watermark
from detector.state.checkpoint import Checkpoint, decode_meta, encode_meta, is_checkpoint

#: Checkpoint section names.
META = "meta"
FIRST_SEEN = "first_seen"
UNIT_PREFIX = "correlation:"
#: Separates the parts of a key record's key: ``base | section | rule id | JSON key``.
SEP = b"\x00"
#: A changelog record: key and value (``None``: a tombstone).
Record = tuple[bytes, bytes | None]


class EngineFactory:
    """Builds the engines of one partition from the loaded rules and the router's units.

    ``stale_after_seconds`` (wall clock, 0: never) lets a source partition that no detect
    member has reported for that long stop holding the watermark back.
    """

    def __init__(
        self,
        ruleset: RuleSet,
        router: MatchRouter,
        *,
        allowed_lateness: float = 60.0,
        max_groups_per_rule: int = 100_000,
        stale_after_seconds: float = 0.0,
    ) -> None:
        self.ruleset = ruleset
        self.router = router
        self.allowed_lateness = allowed_lateness
        self.max_groups_per_rule = max_groups_per_rule
        self.stale_after_seconds = stale_after_seconds
        self._names = dict(ruleset.names)
        self._sigma = [r.sigma for r in ruleset.rules]

    def correlation_engines(self) -> dict[str, CorrelationEngine]:
        """One engine per correlation unit (correlations connected by chaining)."""
        return {
            target: CorrelationEngine(
                rules,
                rule_ids=self._names,
                allowed_lateness=self.allowed_lateness,
                max_groups_per_rule=self.max_groups_per_rule,
            )
            for target, rules in self.router.units.items()
        }

    def first_seen_engine(self) -> FirstSeenEngine:
        """The engine of every first-seen rule."""
        return FirstSeenEngine(
            self._sigma,
            rule_ids=self._names,
            allowed_lateness=self.allowed_lateness,
            max_keys_per_rule=self.max_groups_per_rule,
        )

    def clock(self) -> StreamClock:
        """The per-source watermark of one partition."""
        return StreamClock(self.allowed_lateness, stale_after=self.stale_after_seconds)


def source_name(routed: RoutedMatch) -> str | None:
    """``topic/partition`` of the source record a match came from, if it came from Kafka."""
    origin = routed.match.event.origin
    if origin.topic is None or origin.partition is None:
        return None
    return f"{origin.topic}/{origin.partition}"


class PartitionState:
    """The stateful engines of one matches-topic partition, plus what they reflect.

    ``offset`` is the next input offset (every record below it is in the state);
    ``inputs`` holds, per source ``topic/partition``, the ``(offset, seq)`` of the last
    routed match accepted, so a match the detect stage sends again is dropped.
    """

    def __init__(self, partition: int, factory: EngineFactory) -> None:
        self.partition = partition
        self.units = factory.correlation_engines()
        self.first_seen = factory.first_seen_engine()
        self.clock = factory.clock()
        self.pending = PendingMatches()
        #: Held matches a restored checkpoint still has to read again: per input offset,
        #: the indices of the matches in its record (``None``: all of them).
        self.reloading: dict[int, set[int] | None] = {}
        self._engine_time = -math.inf
        self._first_seen_ids = factory.router.first_seen_ids
        self.inputs: dict[str, tuple[int, int]] = {}
        self.offset: int | None = None
        self.dirty = False
        self.applied = 0
        self.duplicates = 0
        self.too_late = 0
        #: Matches that arrived after a newer one but in time: the buffer put them in order.
        self.reordered = 0
        self._newest = -math.inf
        self.unknown_targets: set[str] = set()
        #: Write every key with the next changelog (restored from an older checkpoint).
        self.rewrite = False
        self._stored_meta: bytes | None = None
        #: Every engine by its section name.
        self.sections: dict[str, CorrelationEngine | FirstSeenEngine] = {
            FIRST_SEEN: self.first_seen,
            **{UNIT_PREFIX + target: engine for target, engine in self.units.items()},
        }
        self._track()

    def _track(self) -> None:
        for engine in self.sections.values():
            engine.track_changes(self.partition)

    def read(self, offset: int, record: RoutedMatch | Watermark | MatchBatch, now: float) -> None:
        """Take the input record at ``offset``: a heartbeat, a routed match, or a batch of
        matches with a heartbeat (applied after them).

        A record below :attr:`offset` is already in the state and skipped, except the
        matches the checkpoint held in the buffer: they are read again into the buffer.
        """
        matches: tuple[RoutedMatch, ...] = ()
        if isinstance(record, RoutedMatch):
            matches = (record,)
        elif isinstance(record, MatchBatch):
            matches = record.matches
        if self.offset is not None and offset < self.offset:
            if offset in self.reloading:
                held = self.reloading.pop(offset)
                for index, routed in enumerate(matches):
                    if held is None or index in held:
                        self.pending.push(routed, offset, index, len(matches))
            return
        for index, routed in enumerate(matches):
            self.accept(routed, now, offset, index, len(matches))
        mark = record if isinstance(record, Watermark) else None
        if isinstance(record, MatchBatch):
            mark = record.heartbeat
        if mark is not None:
            self.report(
                {k: SourceProgress(*v) for k, v in mark.sources.items()}, now, mark.earliest
            )
        self.offset = offset + 1
        self.dirty = True

    def resume_offset(self) -> int | None:
        """Where to read the input from: the oldest held match, else :attr:`offset`.

        Also the offset to commit: everything below it is applied or needs no re-read.
        """
        oldest = self.pending.oldest()
        held = [*self.reloading, *(() if oldest is None else (oldest,))]
        return min(held) if held else self.offset

    def accept(
        self, routed: RoutedMatch, now: float, offset: int, index: int = 0, size: int = 1
    ) -> None:
        """Take one routed match: drop it if already held, else buffer it until the
        watermark passes it. A match the watermark already passed is too late: first-seen
        learns its term without alerting, correlations count it (see docs/runtime.md)."""
        origin = routed.match.event.origin
        source = source_name(routed)
        if source is not None:
            self.clock.heard(source, now)
            if origin.offset is not None:
                position = (origin.offset, routed.seq)
                last = self.inputs.get(source)
                if last is not None and position <= last:
                    self.duplicates += 1
                    return
                self.inputs[source] = position
        if self.pending.push(routed, offset, index, size):
            if routed.match.event.timestamp < self._newest:
                self.reordered += 1
            else:
                self._newest = routed.match.event.timestamp
            return
        self.too_late += 1
        if routed.target in self._first_seen_ids:
            self.first_seen.learn(routed.match, self.partition)
        elif (engine := self.units.get(routed.target)) is not None:
            engine.reject_too_late(routed.match, self.partition)
        else:
            self.unknown_targets.add(routed.target)

    def expect(self, sources: Collection[str], now: float) -> None:
        """Make every source partition in ``sources`` that no heartbeat reported yet hold
        the watermark (as a source without a time), as Flink holds a watermark until every
        input channel sent one: otherwise the first heartbeats of one detect member could
        move it past another member's partitions before that member reported them. A
        source nobody ever reports stops holding it after ``source_stale_seconds``."""
        for source in sources:
            if source not in self.clock.sources:
                self.clock.report(source, SourceProgress(None, False), now)

    def report(
        self,
        sources: dict[str, SourceProgress],
        now: float,
        earliest: Mapping[str, float] | None = None,
    ) -> None:
        """A heartbeat: the progress of the source partitions of one detect member, and the
        earliest event time it saw on each (the origin of first-seen learn periods)."""
        for source, progress in sources.items():
            self.clock.report(source, progress, now)
        if earliest:
            self.clock.report_earliest(earliest)

    def release(self) -> list[Alert]:
        """Apply, in event-time order, every held match the watermark has passed, then move
        every engine's watermark there; returns the alerts this completes.

        When every source is idle all held matches are applied and the engines move to the
        newest progress, but only the watermark makes later arrivals too late: a quiet
        source's next record may still be up to the allowed lateness older.
        """
        if self.reloading:  # the buffer is not complete again yet
            return []
        watermark = self.clock.watermark()
        drained = self.clock.drained()
        if drained is None and watermark <= self.pending.released:
            return []
        held = len(self.pending)
        alerts: list[Alert] = []
        for routed in self.pending.release(watermark, drain=drained is not None):
            alerts.extend(self._apply(routed))
        until = watermark if drained is None else drained
        if math.isfinite(until) and (held or until > self._engine_time):
            self._engine_time = until
            for engine in self.units.values():
                alerts.extend(engine.advance_watermark(until, self.partition))
            self.first_seen.advance_watermark(until, self.partition)
            self.dirty = True
        return alerts

    def _apply(self, routed: RoutedMatch) -> list[Alert]:
        self.applied += 1
        if routed.target in self._first_seen_ids:
            # the watermark passed the match, so every source holding an earlier event has
            # reported its earliest: the origin is the same in every partition (and replay)
            origin = self.clock.origin
            if math.isfinite(origin):
                self.first_seen.anchor(origin, self.partition)
            return self.first_seen.process(routed.match, self.partition)
        engine = self.units.get(routed.target)
        if engine is None:
            self.unknown_targets.add(routed.target)
            return []
        return engine.process(routed.match, self.partition)

    def checkpoint(self) -> Checkpoint:
        """The whole state as one frame (the format of earlier versions, which
        :meth:`finish_restore` still reads), valid up to :attr:`offset`."""
        if self.offset is None:
            raise ValueError("no input applied yet")
        sections = {
            META: orjson.dumps(self._meta()),
            FIRST_SEEN: self.first_seen.snapshot(self.partition),
        }
        for target, engine in self.units.items():
            sections[UNIT_PREFIX + target] = engine.snapshot(self.partition)
        return Checkpoint(offset=self.offset, sections=sections)

    def _meta(self) -> dict[str, Any]:
        """What the partition holds besides the engines' keys."""
        pending = self.pending.snapshot()
        pending["offsets"] = _held(pending["offsets"], self.reloading)
        meta: dict[str, Any] = {
            "inputs": {k: list(v) for k, v in self.inputs.items()},
            "sources": self.clock.snapshot(),
            "pending": pending,
        }
        if math.isfinite(self.clock.origin):
            meta["origin"] = self.clock.origin
        return meta

    def changelog(self, base: str) -> list[Record]:
        """The state-topic records of what changed since the last call, the meta record
        (key ``base``) last; every key after a restore from an older checkpoint.

        A key record's key is ``base | 0x00 | section | 0x00 | rule id | 0x00 | JSON
        array of the group key`` (:data:`SEP`); its value is the engine's JSON for that
        key. Raises ``ValueError`` before any input was applied.
        """
        if self.offset is None:
            raise ValueError("no input applied yet")
        records: list[Record] = []
        headers: dict[str, dict[str, Any]] = {}
        prefix = base.encode() + SEP
        for section, engine in self.sections.items():
            tag = prefix + section.encode() + SEP
            for rule_id, key, value in engine.changes(self.partition, everything=self.rewrite):
                records.append((tag + rule_id.encode() + SEP + orjson.dumps(key), value))
            headers[section] = engine.header(self.partition)
        meta = encode_meta(self.offset, {**self._meta(), "engines": headers})
        records.append((base.encode(), meta))
        self.rewrite = False
        return records

    def load_record(self, tail: bytes, value: bytes | None) -> None:
        """Take one state-topic record of this partition, in topic order; ``tail`` is
        its key after ``base`` (empty for the meta record). Call :meth:`finish_restore`
        after the last one. Raises ``ValueError`` on a malformed key or value."""
        if not tail:
            self._stored_meta = value
            return
        try:
            section, rule_id, raw = tail[1:].split(SEP, 2)
            key = tuple(str(k) for k in orjson.loads(raw))
            engine = self.sections.get(section.decode())
            if engine is not None:
                engine.load_group(self.partition, rule_id.decode(), key, value)
        except (ValueError, TypeError) as exc:  # bad split, UTF-8 or JSON
            raise ValueError(f"invalid state record key {tail[:80]!r}: {exc}") from exc

    def finish_restore(self, now: float) -> bool:
        """Apply the meta record read by :meth:`load_record`; whether there was one.

        Without a meta record the partition has no stored state (key records alone are
        not applied). A whole-state checkpoint of an earlier version is restored, and
        the next :meth:`changelog` then writes every key. Raises ``ValueError`` when the
        stored state is malformed.
        """
        data, self._stored_meta = self._stored_meta, None
        if data is None:
            return False
        if is_checkpoint(data):
            self.restore(Checkpoint.from_bytes(data), now)
            self.rewrite = True
            return True
        offset, meta = decode_meta(data)
        self._restore_meta(meta, now)
        try:
            for section, header in meta.get("engines", {}).items():
                if section in self.sections:
                    self.sections[section].load_header(self.partition, header)
        except AttributeError as exc:
            raise ValueError(f"invalid meta record engines: {exc!r}") from exc
        self.offset = offset
        return True

    def restore(self, checkpoint: Checkpoint, now: float) -> None:
        """Load a whole-state ``checkpoint``; sections of rules no longer loaded are
        ignored. Raises ``ValueError`` when a section is malformed.
        """
        sections = checkpoint.sections
        meta = orjson.loads(sections.get(META, b"{}"))
        self._restore_meta(meta, now)
        if FIRST_SEEN in sections:
            self.first_seen.restore(sections[FIRST_SEEN])
        for target, engine in self.units.items():
            data = sections.get(UNIT_PREFIX + target)
            if data is not None:
                engine.restore(data)
        self._track()  # restore replaced the engines' partition state
        self.offset = checkpoint.offset

    def _restore_meta(self, meta: Any, now: float) -> None:
        try:
            self.inputs = {str(k): (int(v[0]), int(v[1])) for k, v in meta["inputs"].items()}
            self.clock.restore(meta.get("sources", {}), now)
            origin = meta.get("origin")  # absent from checkpoints of older versions
            self.clock.origin = math.inf if origin is None else float(origin)
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(f"invalid checkpoint meta: {exc!r}") from exc
        if "pending" in meta:
            self.pending.released, held = PendingMatches.parse(meta["pending"])
            self.reloading = held

    def stats(self) -> list[EngineStats]:
        """Statistics of every engine of the partition."""
        return [self.first_seen.stats, *(e.stats for e in self.units.values())]


def _held(held: Any, reloading: Mapping[int, set[int] | None]) -> list[Any]:
    """The checkpoint's held matches: those of the buffer (``PendingMatches.snapshot``'s
    offsets) and those still to read again; a bare offset for a record to read again
    whole, ``[offset, index]`` for one match of a record."""
    items: list[Any] = list(held)
    for offset, indices in reloading.items():
        if indices is None:
            items.append(offset)
        else:
            items.extend([offset, i] for i in indices)
    if reloading:
        items.sort(key=lambda item: (item, -1) if isinstance(item, int) else tuple(item))
    return items
