"""First-seen ("new term") rules: a detector extension of Sigma detection rules.

A normal Sigma rule with a top-level ``first_seen`` attribute (pySigma keeps it in
``rule.custom_attributes``; other Sigma tools ignore it and see a plain rule)::

    first_seen:
      fields: [source.ip]     # the term: one or more fields
      group-by: [user.name]   # optional: remembered per key
      timespan: 30d           # how long a term stays known (event time)
      learn: 1d               # optional: no alerts during the first 1d of the input
      network: 24             # optional: IP values as /24 (IPv4) and /48 (IPv6) networks

The rule's detection selects candidate events; an alert fires only when the term has not
been seen for the key within ``timespan``. See docs/correlation.md.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationTimespan
from sigma.exceptions import SigmaTimespanError

from detector.detect.correlation.alerting import group_text, iso, key_id, when
from detector.detect.correlation.changes import (
    ChangedKeys,
    counters_document,
    keys_to_write,
    load_counters,
)
from detector.detect.correlation.fields import key_text, resolve_field
from detector.detect.correlation.spec import rule_info, rule_key, rule_location
from detector.detect.correlation.stats import COUNTERS, EngineStats, RuleStats
from detector.errors import RuleError, RuleLoadError
from detector.models import Alert, Match, RuleInfo, alert_id
from detector.models.serialized import plain

ATTRIBUTE = "first_seen"
SNAPSHOT_VERSION = 1
_KNOWN = {"fields", "group-by", "timespan", "learn", "network", "network6"}


@dataclass(frozen=True, slots=True)
class FirstSeenSpec:
    """A parsed ``first_seen`` attribute plus the rule facts its alerts carry."""

    info: RuleInfo
    fields: tuple[str, ...]
    group_by: tuple[str, ...]
    timespan: float
    timespan_text: str
    learn: float
    network: int | None
    network6: int
    ecs_first: bool


def is_first_seen(rule: Any) -> bool:
    """Whether pySigma rule ``rule`` carries the ``first_seen`` extension.

    Such a rule's single-event matches are candidates only: the single-event engine must
    not emit them as alerts (see :func:`first_seen_spec`).
    """
    return ATTRIBUTE in (getattr(rule, "custom_attributes", None) or {})


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"'{what}' must be a field name or a list of field names")
    return tuple(value)


def _seconds(value: Any, what: str) -> tuple[float, str]:
    try:
        span = SigmaCorrelationTimespan(str(value))
    except SigmaTimespanError as exc:
        raise ValueError(f"'{what}': {exc}") from None
    return float(span.seconds), span.spec


def _prefix(value: Any, what: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ValueError(f"'{what}' must be a prefix length between 0 and {top}")
    return value


def first_seen_spec(
    rule: Any, *, rule_ids: Mapping[str, str] | None = None
) -> FirstSeenSpec | None:
    """Parse the ``first_seen`` attribute of ``rule``; ``None`` when it has none.

    Raises :class:`RuleError` (with the rule's file) when the attribute is malformed, so
    a loader rejects the rule instead of running it as a plain rule.
    """
    attrs = getattr(rule, "custom_attributes", None) or {}
    if ATTRIBUTE not in attrs:
        return None
    raw = attrs[ATTRIBUTE]
    try:
        if not isinstance(raw, dict):
            raise ValueError("must be a mapping")
        unknown = set(raw) - _KNOWN
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(map(str, unknown)))}")
        if "fields" not in raw or "timespan" not in raw:
            raise ValueError("'fields' and 'timespan' are required")
        fields = _names(raw["fields"], "fields")
        group_by = _names(raw["group-by"], "group-by") if "group-by" in raw else ()
        timespan, timespan_text = _seconds(raw["timespan"], "timespan")
        learn = _seconds(raw["learn"], "learn")[0] if "learn" in raw else 0.0
        network = _prefix(raw["network"], "network", 32) if "network" in raw else None
        network6 = _prefix(raw.get("network6", 48), "network6", 128)
    except ValueError as exc:
        raise RuleError(
            f"rule '{rule.title}': invalid first_seen: {exc}", path=rule_location(rule)
        ) from None
    info = rule_info(rule, ATTRIBUTE)
    key = (rule_ids or {}).get(info.id, info.id)
    logsource = getattr(rule, "logsource", None)
    product = str(getattr(logsource, "product", None) or "").lower()
    return FirstSeenSpec(
        info=info.model_copy(update={"id": key}),
        fields=fields,
        group_by=group_by,
        timespan=timespan,
        timespan_text=timespan_text,
        learn=learn,
        network=network,
        network6=network6,
        ecs_first=product == "ecs",
    )


#: Longest text the network cache keeps: an address with zone id fits; a hostile huge
#: value is parsed (and refused) uncached, so the cache stays bounded in bytes.
_CACHED_TEXT = 64


def _network(text: str, v4: int, v6: int) -> str:
    """``10.1.2.3`` -> ``10.1.2.0/24``; values that are not IP addresses stay as they are.

    Cached for short values: parsing addresses was most of a first-seen match's cost, and
    terms repeat."""
    if len(text) <= _CACHED_TEXT:
        return _cached_network(text, v4, v6)
    return _parse_network(text, v4, v6)


def _parse_network(text: str, v4: int, v6: int) -> str:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return text
    prefix = v4 if addr.version == 4 else v6
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


_cached_network = lru_cache(maxsize=65_536)(_parse_network)


class _Partition:
    __slots__ = ("changed", "counters", "max_time", "origin", "seen")

    def __init__(self, rules: int) -> None:
        self.max_time = -math.inf
        # the earliest event time of the input: every learn period starts there
        self.origin = math.inf
        # per rule: (group values + term values) -> event time it was last seen
        self.seen: list[OrderedDict[tuple[str, ...], float]] = [OrderedDict() for _ in range(rules)]
        self.counters: dict[str, list[int]] = {name: [0] * rules for name in COUNTERS}
        # per rule, the keys changed since the last FirstSeenEngine.changes, in the order of
        # their last change; None: not tracked (replay keeps no changelog)
        self.changed: ChangedKeys[tuple[str, ...]] | None = None

    def touch(self, ci: int, key: tuple[str, ...]) -> None:
        """Note that term ``key`` of rule ``ci`` changed (if changes are tracked)."""
        if self.changed is not None:
            self.changed.touch(ci, key)


class FirstSeenEngine:
    """Evaluates first-seen rules on single-event matches, with the same state guarantees
    as :class:`CorrelationEngine`: event-time watermark per partition, bounded keys per
    rule (least recently seen evicted, counted), snapshot/restore to JSON bytes.

    ``rules`` may be every loaded rule: those without ``first_seen`` are ignored.
    """

    def __init__(
        self,
        rules: Sequence[Any],
        *,
        rule_ids: Mapping[str, str] | None = None,
        allowed_lateness: float = 60.0,
        max_keys_per_rule: int = 100_000,
    ) -> None:
        if allowed_lateness < 0 or max_keys_per_rule < 1:
            raise ValueError("lateness must be >= 0 and the cap >= 1")
        self.allowed_lateness = float(allowed_lateness)
        self.max_keys_per_rule = max_keys_per_rule
        specs: list[FirstSeenSpec] = []
        errors: list[RuleError] = []
        for rule in rules:
            try:
                spec = first_seen_spec(rule, rule_ids=rule_ids)
            except RuleError as exc:
                errors.append(exc)
                continue
            if spec is not None:
                specs.append(spec)
        if errors:
            raise RuleLoadError(errors)
        self.specs: tuple[FirstSeenSpec, ...] = tuple(specs)
        self._index = {spec.info.id: i for i, spec in enumerate(self.specs)}
        self._parts: dict[int, _Partition] = {}
        self._too_late: deque[tuple[str, str, float]] = deque(maxlen=100)

    @property
    def rule_ids(self) -> frozenset[str]:
        """The ``Match.rule.id`` values this engine listens to."""
        return frozenset(self._index)

    def _partition(self, partition: int) -> _Partition:
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition(len(self.specs))
        return part

    def anchor(self, event_time: float, partition: int = 0) -> None:
        """Note an event time of the input (any event, matching or not): every ``learn``
        period lasts from the earliest such time, the origin, to origin + ``learn``.

        Anchored on the input rather than on a rule's first candidate, the period is the
        same in every state partition: replay anchors each event, the correlate stage the
        earliest time the detect members report (docs/correlation.md). A candidate older
        than every anchored time moves the origin back to it.
        """
        part = self._partition(partition)
        part.origin = min(part.origin, event_time)

    def process(self, match: Match, partition: int = 0) -> list[Alert]:
        """Feed one match; returns an alert when its term is new for its key.

        A match older than the watermark minus the rule's timespan is too late: its term
        is learned (a later event with it is not "first seen") but it raises no alert,
        because an earlier event may already have fired for the same term.
        """
        event = match.event
        part = self._partition(partition)
        self._advance(part, event.timestamp)
        ci = self._index.get(match.rule.id)
        if ci is None:
            return []
        watermark = part.max_time - self.allowed_lateness
        if event.timestamp < watermark - self.specs[ci].timespan:
            self.learn(match, partition)
            return []
        if event.timestamp < watermark:
            part.counters["late_events"][ci] += 1
        return self._decide(part, ci, match, alerting=True)

    def learn(self, match: Match, partition: int = 0) -> None:
        """Remember ``match``'s term without alerting, counted as too late.

        The policy for a match that arrives after the watermark passed it: out of order,
        it cannot decide "first" the way replay does, but it must not be lost either.
        """
        ci = self._index.get(match.rule.id)
        if ci is None:
            return
        part = self._partition(partition)
        part.counters["too_late_events"][ci] += 1
        self._too_late.append((self.specs[ci].info.id, match.event.id, match.event.timestamp))
        self._decide(part, ci, match, alerting=False)

    def _decide(self, part: _Partition, ci: int, match: Match, *, alerting: bool) -> list[Alert]:
        """Record the term of ``match`` for rule ``ci``; its alert when new and alerting."""
        event = match.event
        spec = self.specs[ci]
        counters = part.counters
        t = event.timestamp
        values: list[str] = []
        for name in spec.group_by + spec.fields:
            text = key_text(resolve_field(event.raw, event.ecs, name, ecs_first=spec.ecs_first))
            if text is None:
                counters["missing_fields"][ci] += 1
                return []
            values.append(text)
        if spec.network is not None:
            n = len(spec.group_by)
            values[n:] = [_network(v, spec.network, spec.network6) for v in values[n:]]
        key = tuple(values)

        seen = part.seen[ci]
        last = seen.get(key)
        if last is None:
            if len(seen) >= self.max_keys_per_rule:
                part.touch(ci, seen.popitem(last=False)[0])
                counters["evictions"][ci] += 1
            seen[key] = t
        else:
            seen[key] = max(last, t)
            seen.move_to_end(key)
        part.touch(ci, key)
        part.origin = min(part.origin, t)
        learning = spec.learn > 0 and t < part.origin + spec.learn
        if (last is not None and t - last <= spec.timespan) or learning or not alerting:
            return []
        counters["alerts"][ci] += 1
        return [self._alert(spec, key, match)]

    @staticmethod
    def _alert(spec: FirstSeenSpec, key: tuple[str, ...], match: Match) -> Alert:
        event = match.event
        n = len(spec.group_by)
        term = group_text(spec.fields, key[n:])
        scope = f" for {group_text(spec.group_by, key[:n])}" if n else ""
        net = f" (as /{spec.network} networks)" if spec.network is not None else ""
        return Alert(
            id=alert_id(spec.info.id, key_id(key), event.timestamp),
            timestamp=when(event.timestamp),
            rule=spec.info,
            reason=(
                f"first seen {term}{net}{scope} at {iso(event.timestamp)}: "
                f"not seen in the previous {spec.timespan_text}"
            ),
            events=(plain(event.ecs),),
            raw_events=(dict(plain(event.raw)),),
            group=dict(zip(spec.group_by + spec.fields, key, strict=True)),
            window_start=when(event.timestamp - spec.timespan),
            window_end=when(event.timestamp),
            event_count=1,
        )

    def advance_watermark(self, event_time: float, partition: int = 0) -> list[Alert]:
        """Note an event time; forgets terms older than ``watermark - timespan``.

        Returns no alerts (first-seen alerts fire on arrival) but keeps the interface of
        :class:`CorrelationEngine`.
        """
        self._advance(self._partition(partition), event_time)
        return []

    def flush(self) -> list[Alert]:
        """End of input: nothing is pending; state is kept (a replay may continue)."""
        return []

    def _advance(self, part: _Partition, event_time: float) -> None:
        if event_time <= part.max_time:
            return
        part.max_time = event_time
        watermark = event_time - self.allowed_lateness
        for ci, spec in enumerate(self.specs):
            seen = part.seen[ci]
            horizon = watermark - spec.timespan
            while seen:
                if next(iter(seen.values())) >= horizon:
                    break
                part.touch(ci, seen.popitem(last=False)[0])
                part.counters["expired_groups"][ci] += 1

    @property
    def stats(self) -> EngineStats:
        """Remembered keys per rule and the counters, summed over partitions."""
        rules: dict[str, RuleStats] = {}
        for ci, spec in enumerate(self.specs):
            totals = {
                name: sum(p.counters[name][ci] for p in self._parts.values()) for name in COUNTERS
            }
            keys = sum(len(p.seen[ci]) for p in self._parts.values())
            rules[spec.info.id] = RuleStats(active_groups=keys, entries=keys, **totals)
        return EngineStats(
            rules=rules,
            watermarks={
                p: part.max_time - self.allowed_lateness for p, part in self._parts.items()
            },
            too_late_samples=tuple(self._too_late),
        )

    def snapshot(self, partition: int | None = None) -> bytes:
        """The state of one partition (or all) as JSON bytes (never pickle)."""
        chosen: Iterable[tuple[int, _Partition]] = (
            self._parts.items() if partition is None else [(partition, self._partition(partition))]
        )
        parts = []
        for pid, part in chosen:
            rules = {
                spec.info.id: {
                    "seen": [[list(k), t] for k, t in part.seen[ci].items()],
                    "counters": {name: part.counters[name][ci] for name in COUNTERS},
                }
                for ci, spec in enumerate(self.specs)
            }
            max_time = part.max_time if math.isfinite(part.max_time) else None
            origin = part.origin if math.isfinite(part.origin) else None
            parts.append({"partition": pid, "max_time": max_time, "origin": origin, "rules": rules})
        return orjson.dumps({"version": SNAPSHOT_VERSION, "kind": ATTRIBUTE, "parts": parts})

    def restore(self, data: bytes) -> None:
        """Replace the state of every partition present in ``data``; ``ValueError`` if malformed."""
        try:
            doc = orjson.loads(data)
            if doc.get("version") != SNAPSHOT_VERSION or doc.get("kind") != ATTRIBUTE:
                raise ValueError("unsupported snapshot version or kind")
            restored = {int(p["partition"]): self._restore_part(p) for p in doc["parts"]}
        except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
            raise ValueError(f"invalid first-seen snapshot: {exc}") from exc
        self._parts.update(restored)

    def _restore_part(self, data: dict[str, Any]) -> _Partition:
        part = _Partition(len(self.specs))
        part.max_time = -math.inf if data["max_time"] is None else float(data["max_time"])
        origin = data.get("origin")
        if origin is not None:
            part.origin = float(origin)
        for rule_id, state in data["rules"].items():
            ci = self._index.get(rule_id)
            if ci is None:
                continue
            # snapshots of older versions keep a learn end per rule instead of the origin
            learn_until = state.get("learn_until")
            if origin is None and learn_until is not None:
                part.origin = min(part.origin, float(learn_until) - self.specs[ci].learn)
            for name in COUNTERS:
                part.counters[name][ci] = int(state["counters"].get(name, 0))
            seen = part.seen[ci]
            for raw_key, t in state["seen"]:
                seen[tuple(str(k) for k in raw_key)] = float(t)
        return part

    # -- changelog (per term) -----------------------------------------------------------

    def track_changes(self, partition: int) -> None:
        """Remember which terms of ``partition`` change, for :meth:`changes`."""
        part = self._partition(partition)
        if part.changed is None:
            part.changed = ChangedKeys(len(self.specs))

    def changes(
        self, partition: int, *, everything: bool = False
    ) -> Iterator[tuple[str, tuple[str, ...], bytes | None]]:
        """``(rule id, group + term values, value)`` of every term changed since the last
        call (all terms when ``everything``), in the order of their last change; the value
        is the last-seen time as JSON, ``None`` for a forgotten term (a tombstone).
        Consuming it forgets those changes."""
        part = self._partition(partition)
        for ci, spec in enumerate(self.specs):
            seen = part.seen[ci]
            for key in keys_to_write(part.changed, ci, seen, everything):
                t = seen.get(key)
                yield spec.info.id, key, None if t is None else orjson.dumps(t)

    def header(self, partition: int) -> dict[str, Any]:
        """What :meth:`changes` leaves out: event time, input origin and counters."""
        part = self._partition(partition)
        return {
            "max_time": part.max_time if math.isfinite(part.max_time) else None,
            "origin": part.origin if math.isfinite(part.origin) else None,
            "counters": counters_document([s.info.id for s in self.specs], part.counters),
        }

    def load_group(
        self, partition: int, rule_id: str, key: tuple[str, ...], value: bytes | None
    ) -> None:
        """Apply one record of :meth:`changes` (``None`` forgets the term); records of
        rules no longer loaded are ignored. Raises ``ValueError`` on a malformed value."""
        ci = self._index.get(rule_id)
        if ci is None:
            return
        seen = self._partition(partition).seen[ci]
        seen.pop(key, None)
        if value is not None:
            try:
                seen[key] = float(orjson.loads(value))
            except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
                raise ValueError(f"invalid first-seen record: {exc}") from exc

    def load_header(self, partition: int, header: Mapping[str, Any]) -> None:
        """Apply :meth:`header` output; raises ``ValueError`` when malformed."""
        part = self._partition(partition)
        try:
            max_time, origin = header["max_time"], header.get("origin")
            part.max_time = -math.inf if max_time is None else float(max_time)
            part.origin = math.inf if origin is None else float(origin)
            load_counters(self._index, part.counters, header["counters"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"invalid first-seen header: {exc!r}") from exc


def suppressed_rule_ids(
    rules: Iterable[Any], *, rule_ids: Mapping[str, str] | None = None
) -> set[str]:
    """``Match.rule.id`` of rules whose single-event matches must not become alerts.

    That is rules referenced by a correlation with ``generate: false`` (pySigma marks them
    when references are resolved) and first-seen rules (they alert through
    :class:`FirstSeenEngine` only). Correlation rules themselves are never listed.
    """
    out: set[str] = set()
    ids = rule_ids or {}
    for rule in rules:
        if isinstance(rule, SigmaCorrelationRule):
            continue
        if not getattr(rule, "_output", True) or is_first_seen(rule):
            key = rule_key(rule)
            out.add(ids.get(key, key))
    return out
