"""Sigma correlations over true sliding windows on event time.

Feed every single-event :class:`Match` to :meth:`CorrelationEngine.process` and call
:meth:`CorrelationEngine.advance_watermark` for every event (matching or not) so windows
close on event time. State lives per partition (a Kafka partition of the correlate
stage, or 0 for replay), with its own watermark, and snapshots to bytes per partition.
See docs/correlation.md for the semantics and the late-event policy.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from sigma.correlations import SigmaCorrelationRule

from detector.detect.correlation.alerting import alert_document, build_alert
from detector.detect.correlation.changes import (
    ChangedKeys,
    counters_document,
    keys_to_write,
    load_counters,
)
from detector.detect.correlation.fields import key_text, number, resolve_field
from detector.detect.correlation.spec import CorrelationSpec, compile_correlation, rule_key
from detector.detect.correlation.stats import COUNTERS, EngineStats, RuleStats
from detector.detect.correlation.window import Entry, entry_time, holds
from detector.errors import RuleError, RuleLoadError
from detector.models import Alert, Match
from detector.models.serialized import SerializedDocument, json_default

GroupKey = tuple[str, ...]
SNAPSHOT_VERSION = 1


class _Partition:
    """State of one partition: its watermark source, groups per rule, close-time heap."""

    __slots__ = ("changed", "counters", "entries", "groups", "heap", "max_time")

    def __init__(self, rules: int) -> None:
        self.max_time = -math.inf
        self.groups: list[OrderedDict[GroupKey, list[Entry]]] = [
            OrderedDict() for _ in range(rules)
        ]
        # (close time, rule index, key) of windows evaluated at close; stale items are
        # skipped on pop (the group's first entry no longer gives that close time).
        self.heap: list[tuple[float, int, GroupKey]] = []
        self.counters: dict[str, list[int]] = {name: [0] * rules for name in COUNTERS}
        # per rule, the entries held by its groups, kept up to date on every change: the
        # stats are read every second, and summing a million groups took most of a core
        self.entries = [0] * rules
        # per rule, the keys changed since the last :meth:`CorrelationEngine.changes`, in
        # the order of their last change; None: not tracked (replay keeps no changelog)
        self.changed: ChangedKeys[GroupKey] | None = None

    def touch(self, ci: int, key: GroupKey) -> None:
        """Note that group ``key`` of rule ``ci`` changed (if changes are tracked)."""
        if self.changed is not None:
            self.changed.touch(ci, key)


class _Source:
    """Where a hit's fields come from: a native record and an ECS document."""

    __slots__ = ("derived", "doc", "ecs", "raw", "time")

    def __init__(
        self,
        time: float,
        raw: Mapping[str, Any],
        ecs: Mapping[str, Any],
        doc: Mapping[str, Any],
        derived: bool,
    ) -> None:
        self.time = time
        self.raw = raw
        self.ecs = ecs
        self.doc = doc
        self.derived = derived


class CorrelationEngine:
    """Evaluates pySigma correlation rules on a stream of single-event matches.

    ``rule_ids`` maps a rule reference (name or id as written under ``rules:``) to the
    ``Match.rule.id`` of that rule when it is not :func:`rule_key` of the rule.
    ``allowed_lateness`` (seconds of event time) sets the watermark, ``max_groups_per_rule``
    caps active group keys per rule and partition (least recently updated evicted first),
    ``max_entries_per_group`` caps the entries a group keeps, ``max_evidence`` the ECS
    documents an alert carries. Raises :class:`RuleLoadError` listing every rule it
    cannot evaluate.
    """

    def __init__(
        self,
        correlations: Sequence[SigmaCorrelationRule],
        *,
        rule_ids: Mapping[str, str] | None = None,
        allowed_lateness: float = 60.0,
        max_groups_per_rule: int = 100_000,
        max_entries_per_group: int = 1_000,
        max_evidence: int = 20,
    ) -> None:
        if allowed_lateness < 0 or max_groups_per_rule < 1 or max_entries_per_group < 1:
            raise ValueError("lateness must be >= 0 and caps >= 1")
        self.allowed_lateness = float(allowed_lateness)
        self.max_groups_per_rule = max_groups_per_rule
        self.max_entries_per_group = max_entries_per_group
        self.max_evidence = max_evidence
        keys = [(rule_ids or {}).get(rule_key(c), rule_key(c)) for c in correlations]
        errors: list[RuleError] = []
        specs: list[CorrelationSpec] = []
        for rule in correlations:
            try:
                specs.append(compile_correlation(rule, rule_ids=rule_ids, correlation_keys=keys))
            except RuleError as exc:
                errors.append(exc)
        if errors:
            raise RuleLoadError(errors)
        self.specs: tuple[CorrelationSpec, ...] = tuple(specs)
        self._index = {spec.info.id: i for i, spec in enumerate(self.specs)}
        self._listeners: dict[str, list[tuple[int, int]]] = {}
        for ci, spec in enumerate(self.specs):
            for ri, ref in enumerate(spec.refs):
                self._listeners.setdefault(ref.key, []).append((ci, ri))
        self._emit = self._outputs(correlations, errors)
        if errors:
            raise RuleLoadError(errors)
        self._parts: dict[int, _Partition] = {}
        self._too_late: deque[tuple[str, str, float]] = deque(maxlen=100)

    # -- configuration ------------------------------------------------------------------

    def _outputs(
        self, correlations: Sequence[SigmaCorrelationRule], errors: list[RuleError]
    ) -> list[bool]:
        """Which correlations return their alerts, checking chains for cycles.

        A correlation referenced by another one with ``generate: false`` (the default)
        only feeds the outer correlation, as the Sigma specification says.
        """
        emit = [spec.emit for spec in self.specs]
        for ci, (spec, rule) in enumerate(zip(self.specs, correlations, strict=True)):
            for ref in spec.refs:
                inner = self._index.get(ref.key)
                if inner is None:
                    if ref.chained:
                        errors.append(
                            RuleError(
                                f"'{spec.info.title}' references correlation "
                                f"'{ref.reference}' which is not loaded"
                            )
                        )
                    continue
                if not rule.generate:
                    emit[inner] = False
                if self._reaches(inner, ci):
                    errors.append(
                        RuleError(f"correlation '{spec.info.title}' is part of a reference cycle")
                    )
        return emit

    def _reaches(self, start: int, target: int) -> bool:
        seen: set[int] = set()
        todo = [start]
        while todo:
            ci = todo.pop()
            if ci == target:
                return True
            if ci in seen:
                continue
            seen.add(ci)
            todo.extend(self._index[r.key] for r in self.specs[ci].refs if r.key in self._index)
        return False

    @property
    def rule_ids(self) -> frozenset[str]:
        """The ``Match.rule.id`` values this engine listens to."""
        return frozenset(self._listeners)

    # -- input --------------------------------------------------------------------------

    def _partition(self, partition: int) -> _Partition:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition(len(self.specs))
        return part

    def _watermark(self, part: _Partition) -> float:
        return part.max_time - self.allowed_lateness

    def process(self, match: Match, partition: int = 0) -> list[Alert]:
        """Feed one single-event match; returns the alerts it completes (possibly none).

        Matches of rules no correlation references only advance the watermark.
        """
        event = match.event
        part = self._partition(partition)
        alerts = self._advance(part, event.timestamp)
        listeners = self._listeners.get(match.rule.id)
        if listeners:
            source = _Source(event.timestamp, event.raw, event.ecs, event.ecs, derived=False)
            for ci, ri in listeners:
                self._feed(part, (ci, ri), source, alerts, event.id)
        return alerts

    def reject_too_late(self, match: Match, partition: int = 0) -> None:
        """Count ``match`` as too late for every correlation that listens to its rule.

        The correlate stage calls this for a match the watermark already passed: fed now,
        out of event-time order, it could cut a window at another event than replay.
        """
        part = self._partition(partition)
        for ci, _ in self._listeners.get(match.rule.id, ()):
            part.counters["too_late_events"][ci] += 1
            self._too_late.append((self.specs[ci].info.id, match.event.id, match.event.timestamp))

    def advance_watermark(self, event_time: float, partition: int = 0) -> list[Alert]:
        """Note that an event of time ``event_time`` was seen; closes windows it passes."""
        return self._advance(self._partition(partition), event_time)

    def flush(self) -> list[Alert]:
        """End of input: evaluate every open window as closed, then drop all state."""
        alerts: list[Alert] = []
        for part in self._parts.values():
            self._close(part, math.inf, alerts)
            for ci, groups in enumerate(part.groups):
                for key in groups:
                    part.touch(ci, key)
                groups.clear()
                part.entries[ci] = 0
            part.heap.clear()
        return alerts

    # -- windows ------------------------------------------------------------------------

    def _advance(self, part: _Partition, event_time: float) -> list[Alert]:
        alerts: list[Alert] = []
        if event_time > part.max_time:
            part.max_time = event_time
            watermark = self._watermark(part)
            self._close(part, watermark, alerts)
            self._expire(part, watermark)
        return alerts

    def _feed(
        self,
        part: _Partition,
        target: tuple[int, int],
        src: _Source,
        alerts: list[Alert],
        event_id: str,
    ) -> None:
        ci, ri = target
        spec = self.specs[ci]
        counters = part.counters
        t = src.time
        watermark = self._watermark(part)
        horizon = watermark - spec.timespan
        if not src.derived:
            if t < horizon:
                counters["too_late_events"][ci] += 1
                self._too_late.append((spec.info.id, event_id, t))
                return
            if t < watermark:
                counters["late_events"][ci] += 1
        ecs_first = spec.refs[ri].ecs_first
        parts: list[str] = []
        for name in spec.group_fields[ri]:
            text = key_text(resolve_field(src.raw, src.ecs, name, ecs_first=ecs_first))
            if text is None:
                counters["missing_fields"][ci] += 1
                return
            parts.append(text)
        key = tuple(parts)
        value: Any = None
        value_name = spec.value_fields[ri]
        if value_name is not None:
            found = resolve_field(src.raw, src.ecs, value_name, ecs_first=ecs_first)
            value = key_text(found) if spec.type == "value_count" else number(found)
            if value is None:
                counters["missing_fields"][ci] += 1
                return

        groups = part.groups[ci]
        entries = groups.get(key)
        if entries is None:
            if len(groups) >= self.max_groups_per_rule:
                evicted, dropped = groups.popitem(last=False)
                part.touch(ci, evicted)
                part.entries[ci] -= len(dropped)
                counters["evictions"][ci] += 1
            entries = groups[key] = []
        else:
            groups.move_to_end(key)
        held = len(entries)
        first = entries[0].time if entries else None
        if entries and entries[0].time < horizon:
            del entries[: bisect_left(entries, horizon, key=entry_time)]
        if not self._dedupe(spec, entries, t, ri, value):
            index = bisect_right(entries, t, key=entry_time)
            entries.insert(index, Entry(t, ri, value, src.doc))
            if len(entries) > self.max_entries_per_group:
                del entries[0]
                index -= 1
                counters["truncated_entries"][ci] += 1
            if spec.early and index >= 0:
                self._fire_early(part, ci, key, entries, index=index, alerts=alerts)
        part.touch(ci, key)
        part.entries[ci] += len(entries) - held
        if not entries:
            del groups[key]
        elif not spec.early and entries[0].time != first:
            heapq.heappush(part.heap, (entries[0].time + spec.timespan, ci, key))

    @staticmethod
    def _dedupe(spec: CorrelationSpec, entries: list[Entry], t: float, ri: int, value: Any) -> bool:
        """Keep only the newest entry per distinct value (value_count) or per rule
        (temporal): older duplicates cannot change any window still to be evaluated.
        Returns True when the new hit is redundant and must not be inserted."""
        if spec.type == "value_count":
            slot, probe = 2, value
        elif spec.type == "temporal":
            slot, probe = 1, ri
        else:
            return False
        for i in range(len(entries) - 1, -1, -1):
            if entries[i][slot] == probe:
                if entries[i].time >= t:
                    return True
                del entries[i]
                return False
        return False

    def _fire_early(
        self,
        part: _Partition,
        ci: int,
        key: GroupKey,
        entries: list[Entry],
        *,
        index: int,
        alerts: list[Alert],
    ) -> None:
        """Check the sliding windows the new entry belongs to: those ending at it and, for
        a late entry, at each newer entry within the timespan. The first window that
        holds fires once and its entries are consumed."""
        spec = self.specs[ci]
        span = spec.timespan
        limit = entries[index][0] + span
        for end in range(index, len(entries)):
            end_time = entries[end][0]
            if end_time > limit:
                break
            start = bisect_left(entries, end_time - span, 0, end + 1, key=entry_time)
            window = entries[start : end + 1]
            ok, value = holds(spec, window)
            if ok:
                del entries[start : end + 1]
                self._fire(part, ci, key, window, value=value, alerts=alerts)
                return

    def _close(self, part: _Partition, watermark: float, alerts: list[Alert]) -> None:
        """Decide windows ``[s, s + timespan]`` the watermark has passed, for conditions
        only a complete window can decide (``lt``, ``eq``, ``not`` ...). ``s`` is the
        oldest unconsumed match of the group; the window's matches are consumed whether it
        fires or not, so every match is judged in exactly one window."""
        heap = part.heap
        while heap and heap[0][0] < watermark:
            close, ci, key = heapq.heappop(heap)
            spec = self.specs[ci]
            span = spec.timespan
            groups = part.groups[ci]
            entries = groups.get(key)
            if not entries or entries[0].time + span != close:
                continue
            part.touch(ci, key)
            while entries and entries[0].time + span < watermark:
                end = bisect_right(entries, entries[0].time + span, key=entry_time)
                window = entries[:end]
                del entries[:end]
                part.entries[ci] -= end
                ok, value = holds(spec, window)
                if ok:
                    self._fire(part, ci, key, window, value=value, alerts=alerts)
            if entries:
                heapq.heappush(heap, (entries[0].time + span, ci, key))
            else:
                del groups[key]

    def _expire(self, part: _Partition, watermark: float) -> None:
        """Drop groups whose newest entry is older than ``watermark - timespan``; groups
        sit in least-recently-updated order, so the scan stops at the first live one."""
        for ci, spec in enumerate(self.specs):
            if not spec.early:
                continue  # closing rules leave state through _close
            horizon = watermark - spec.timespan
            groups = part.groups[ci]
            while groups:
                entries = next(iter(groups.values()))
                if entries and entries[-1].time >= horizon:
                    break
                part.touch(ci, groups.popitem(last=False)[0])
                part.entries[ci] -= len(entries)
                part.counters["expired_groups"][ci] += 1

    def _fire(
        self,
        part: _Partition,
        ci: int,
        key: GroupKey,
        window: list[Entry],
        *,
        value: float,
        alerts: list[Alert],
    ) -> None:
        spec = self.specs[ci]
        alert = build_alert(spec, key, window, value, self.max_evidence)
        part.counters["alerts"][ci] += 1
        if self._emit[ci]:
            alerts.append(alert)
        outer = self._listeners.get(spec.info.id)
        if outer:
            assert alert.window_end is not None
            group: dict[str, Any] = dict(alert.group)
            doc = alert_document(alert)
            source = _Source(window[-1].time, group, doc, doc, derived=True)
            for cj, rj in outer:
                self._feed(part, (cj, rj), source, alerts, alert.id)

    # -- observability ------------------------------------------------------------------

    @property
    def stats(self) -> EngineStats:
        """Per-rule active groups, entries and counters summed over partitions."""
        rules: dict[str, RuleStats] = {}
        for ci, spec in enumerate(self.specs):
            totals = {name: 0 for name in COUNTERS}
            groups = entries = 0
            for part in self._parts.values():
                groups += len(part.groups[ci])
                entries += part.entries[ci]
                for name in COUNTERS:
                    totals[name] += part.counters[name][ci]
            rules[spec.info.id] = RuleStats(active_groups=groups, entries=entries, **totals)
        return EngineStats(
            rules=rules,
            watermarks={p: self._watermark(part) for p, part in self._parts.items()},
            too_late_samples=tuple(self._too_late),
        )

    # -- persistence --------------------------------------------------------------------

    def snapshot(self, partition: int | None = None) -> bytes:
        """The state of one partition (or all) as JSON bytes, restorable by :meth:`restore`.

        Plain JSON (orjson), never pickle: the state holds attacker-controlled values.
        """
        chosen: Iterable[tuple[int, _Partition]] = (
            self._parts.items() if partition is None else [(partition, self._partition(partition))]
        )
        parts = []
        for pid, part in chosen:
            rules = {}
            for ci, spec in enumerate(self.specs):
                rules[spec.info.id] = {
                    "groups": [[list(k), [list(e) for e in v]] for k, v in part.groups[ci].items()],
                    "counters": {name: part.counters[name][ci] for name in COUNTERS},
                }
            parts.append({"partition": pid, "max_time": _finite(part.max_time), "rules": rules})
        return orjson.dumps(
            {"version": SNAPSHOT_VERSION, "kind": "correlation", "parts": parts},
            default=json_default,
        )

    def restore(self, data: bytes) -> None:
        """Replace the state of every partition present in ``data`` (from :meth:`snapshot`).

        State of rules no longer loaded is dropped. Raises ``ValueError`` on malformed
        input.
        """
        try:
            doc = orjson.loads(data)
            if doc.get("version") != SNAPSHOT_VERSION or doc.get("kind") != "correlation":
                raise ValueError("unsupported snapshot version or kind")
            restored = {int(p["partition"]): self._restore_part(p) for p in doc["parts"]}
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
            raise ValueError(f"invalid correlation snapshot: {exc}") from exc
        self._parts.update(restored)

    def _restore_part(self, data: dict[str, Any]) -> _Partition:
        part = _Partition(len(self.specs))
        max_time = data["max_time"]
        part.max_time = -math.inf if max_time is None else float(max_time)
        for rule_id, state in data["rules"].items():
            ci = self._index.get(rule_id)
            if ci is None:
                continue
            spec = self.specs[ci]
            for name in COUNTERS:
                part.counters[name][ci] = int(state["counters"].get(name, 0))
            groups = part.groups[ci]
            for raw_key, raw_entries in state["groups"]:
                key = tuple(str(k) for k in raw_key)
                entries: list[Entry] = []
                for t, ri, value, doc in raw_entries:
                    if not 0 <= int(ri) < len(spec.refs) or not isinstance(doc, dict):
                        raise ValueError("entry does not fit the loaded rule")
                    entries.append(Entry(float(t), int(ri), value, _kept(doc)))
                if entries:
                    groups[key] = entries
                    part.entries[ci] += len(entries)
                    if not spec.early:
                        part.heap.append((entries[0].time + spec.timespan, ci, key))
        heapq.heapify(part.heap)
        return part

    # -- changelog (per group key) ------------------------------------------------------

    def track_changes(self, partition: int) -> None:
        """Remember which group keys of ``partition`` change, for :meth:`changes`."""
        part = self._partition(partition)
        if part.changed is None:
            part.changed = ChangedKeys(len(self.specs))

    def changes(
        self, partition: int, *, everything: bool = False
    ) -> Iterator[tuple[str, GroupKey, bytes | None]]:
        """``(rule id, group key, value)`` of every group changed since the last call (all
        groups when ``everything``), in the order of their last change; ``None`` for a
        group that no longer exists (a tombstone). Consuming it forgets those changes.

        A value is the group's entries as JSON (orjson), read back by :meth:`load_group`.
        """
        part = self._partition(partition)
        for ci, spec in enumerate(self.specs):
            groups = part.groups[ci]
            for key in keys_to_write(part.changed, ci, groups, everything):
                entries = groups.get(key)
                yield (
                    spec.info.id,
                    key,
                    None
                    if entries is None
                    else orjson.dumps([list(e) for e in entries], default=json_default),
                )

    def header(self, partition: int) -> dict[str, Any]:
        """What :meth:`changes` leaves out: the partition's event time and counters."""
        part = self._partition(partition)
        return {
            "max_time": _finite(part.max_time),
            "counters": counters_document([s.info.id for s in self.specs], part.counters),
        }

    def load_group(self, partition: int, rule_id: str, key: GroupKey, value: bytes | None) -> None:
        """Apply one changelog record of :meth:`changes` (``None`` deletes the group);
        records of rules no longer loaded are ignored. Call :meth:`load_header` after the
        last one. Raises ``ValueError`` on a malformed value."""
        ci = self._index.get(rule_id)
        if ci is None:
            return
        part = self._partition(partition)
        groups = part.groups[ci]
        part.entries[ci] -= len(groups.pop(key, ()))
        if value is None:
            return
        refs = len(self.specs[ci].refs)
        entries: list[Entry] = []
        try:
            for t, ri, found, doc in orjson.loads(value):
                if not 0 <= int(ri) < refs or not isinstance(doc, dict):
                    raise ValueError("entry does not fit the loaded rule")
                entries.append(Entry(float(t), int(ri), found, _kept(doc)))
        except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
            raise ValueError(f"invalid correlation group record: {exc}") from exc
        if entries:
            groups[key] = entries
            part.entries[ci] += len(entries)

    def load_header(self, partition: int, header: Mapping[str, Any]) -> None:
        """Apply :meth:`header` output after the group records; rebuilds the close-time
        heap. Raises ``ValueError`` on a malformed header."""
        part = self._partition(partition)
        try:
            max_time = header["max_time"]
            part.max_time = -math.inf if max_time is None else float(max_time)
            load_counters(self._index, part.counters, header["counters"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"invalid correlation header: {exc!r}") from exc
        part.heap = [
            (entries[0].time + spec.timespan, ci, key)
            for ci, spec in enumerate(self.specs)
            if not spec.early
            for key, entries in part.groups[ci].items()
        ]
        heapq.heapify(part.heap)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _kept(doc: dict[str, Any]) -> SerializedDocument:
    """A restored entry's evidence document, held serialized as live entries hold theirs:
    a parsed ECS document takes several times its JSON's bytes, for every held entry,
    while only the few an alert embeds are ever read. Copied to its exact size: orjson's
    output keeps the capacity it wrote into (4 KiB at least)."""
    return SerializedDocument(bytes(memoryview(orjson.dumps(doc))))
