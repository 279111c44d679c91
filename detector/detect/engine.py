"""Single-event detection: which compiled rules match an event."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from detector.detect.index import RuleIndex, matcher
from detector.detect.ruleset import CompiledRule, RuleSet
from detector.models import Event, LogSource, Match
from detector.models.events import completed

#: LogSource objects remembered by identity (a few per process in practice).
_IDENTITY_CACHE = 64


@dataclass(frozen=True, slots=True)
class _Bucket:
    """The rules that apply to one (log source, family): native ones and ECS ones."""

    native: RuleIndex
    ecs: RuleIndex
    #: ECS rules apply: a pending event's ECS document is built before matching.
    reads_ecs: bool
    matching: Callable[[Mapping[str, Any], Mapping[str, Any]], list[CompiledRule]]


class DetectionEngine:
    """Evaluates every applicable rule of a :class:`RuleSet` on one event at a time.

    Rules are grouped by the log source they apply to and indexed by literal field
    values, so an event is tested only against candidate rules. Pure and synchronous;
    a single engine may be shared by callers on one thread.
    """

    def __init__(self, rules: RuleSet) -> None:
        self.ruleset = rules
        self._exceptions = rules.exceptions if rules.exceptions else None
        self._buckets: dict[tuple[LogSource, str], _Bucket] = {}
        # id(LogSource) -> (that LogSource, family, bucket); holding the object keeps
        # its id from being reused.
        self._by_identity: dict[int, tuple[LogSource, str, _Bucket]] = {}
        self._last: tuple[LogSource, str, _Bucket] | None = None

    def _bucket(self, logsource: LogSource, family: str) -> _Bucket:
        key = (logsource, family)
        bucket = self._buckets.get(key)
        if bucket is None:
            applicable = [r for r in self.ruleset.rules if r.scope.applies(logsource, family)]
            native = RuleIndex([r for r in applicable if not r.scope.ecs])
            ecs = RuleIndex([r for r in applicable if r.scope.ecs])
            bucket = _Bucket(
                native=native, ecs=ecs, reads_ecs=bool(ecs.rules), matching=matcher(native, ecs)
            )
            self._buckets[key] = bucket
        return bucket

    def evaluate(self, event: Event) -> list[Match]:
        """Every rule matching ``event`` (native-field rules, then ECS rules, in a fixed
        order), including rules that emit no alerts of their own
        (:meth:`RuleSet.generates` is False; correlations still count them). Matches an
        exception of the rule set covers are left out (before any correlation sees them).
        """
        # Normalizers share one LogSource object per source: look it up by identity
        # (hashing the dataclass costs more than the rest of a typical lookup).
        logsource, family = event.logsource, event.family
        last = self._last
        if last is not None and logsource is last[0] and family == last[1]:
            bucket = last[2]
        else:
            cached = self._by_identity.get(id(logsource))
            if cached is not None and cached[0] is logsource and cached[1] == family:
                bucket = cached[2]
            else:
                bucket = self._bucket(logsource, family)
                if len(self._by_identity) < _IDENTITY_CACHE:
                    self._by_identity[id(logsource)] = (logsource, family, bucket)
            self._last = (logsource, family, bucket)
        if event.complete is not None and bucket.reads_ecs:
            event = completed(event)
        matched = bucket.matching(event.raw, event.ecs)
        if not matched:
            return []
        if event.complete is not None:
            # matched on native fields alone: the alert and the correlations need the rest
            event = completed(event)
        matches = [
            Match(rule.info, event, rule.held(event.ecs if rule.scope.ecs else event.raw))
            for rule in matched
        ]
        if self._exceptions is not None:
            return self._exceptions.filter(matches)
        return matches
