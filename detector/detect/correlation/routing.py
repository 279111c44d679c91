"""Routing of single-event matches to the stateful (correlate) stage.

Every group of a correlation or first-seen rule must see all of its matches on one
partition of the internal matches topic. :class:`MatchRouter` tells, for one match, which
stateful *targets* it feeds and under which key; the detect stage uses the key as the
Kafka record key, so Kafka's partitioner sends a group to one partition.

Targets:

- a **correlation unit**: correlations connected by chaining (an outer correlation
  referencing an inner one) share one engine and one target, named by the id of the
  unit's first correlation. The key is built from the group-by names *every* correlation
  of the unit shares, read from the match with the fields (aliases applied) and the
  native/ECS preference the engine itself uses (:class:`CorrelationSpec`). When the
  correlations of a unit share no group-by name the key is empty: the unit is correct
  but runs on one partition.
- a **first-seen rule**: keyed by its ``group-by`` values, or by its term fields (as
  networks when ``network`` is set) when it has no ``group-by``.

A match lacking a key field is not routed: the engines would not count it either
(``missing_fields``).

A routed match carries the native fields its target reads (:meth:`MatchRouter.route`):
a correlation reads only its group-by and value fields from the native record (its
alerts embed the ECS documents), a first-seen rule embeds the whole record in its alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigma.correlations import SigmaCorrelationRule

from detector.detect.correlation.alerting import key_id
from detector.detect.correlation.engine import CorrelationEngine
from detector.detect.correlation.fields import MISSING, key_text, lookup, resolve_field
from detector.detect.correlation.firstseen import FirstSeenEngine, _network
from detector.detect.correlation.spec import CorrelationSpec
from detector.models import Match

#: What :meth:`MatchRouter.route` gives per target: target, key, native values, ECS
#: values and native look-ups.
Routed = tuple[str, str, dict[str, Any] | None, dict[str, Any], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Route:
    """How a match of one rule is keyed for one target."""

    target: str
    fields: tuple[str, ...]
    ecs_first: bool
    network: tuple[int, int] | None = None  # (IPv4, IPv6) prefixes for first-seen terms
    #: Native fields the target reads from the match (``None``: the whole record).
    reads: tuple[str, ...] | None = None
    #: Fields the target may read from the match's ECS document.
    ecs_reads: tuple[str, ...] = ()


class MatchRouter:
    """Routes matches of the rules that stateful rules reference.

    ``rules`` are the loaded pySigma detection rules (those with ``first_seen`` become
    first-seen targets), ``correlations`` the pySigma correlation rules and ``rule_ids``
    the reference-to-``Match.rule.id`` mapping the engines are given. Raises
    :class:`~detector.errors.RuleLoadError` like the engines do.
    """

    def __init__(
        self,
        rules: Sequence[Any],
        correlations: Sequence[SigmaCorrelationRule],
        *,
        rule_ids: Mapping[str, str] | None = None,
    ) -> None:
        specs = CorrelationEngine(correlations, rule_ids=rule_ids).specs
        index = {spec.info.id: i for i, spec in enumerate(specs)}
        parent = list(range(len(specs)))

        def root(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for i, spec in enumerate(specs):
            for ref in spec.refs:
                j = index.get(ref.key)
                if j is not None:
                    parent[root(i)] = root(j)
        members: dict[int, list[int]] = {}
        for i in range(len(specs)):
            members.setdefault(root(i), []).append(i)

        routes: dict[str, list[Route]] = {}
        units: dict[str, tuple[SigmaCorrelationRule, ...]] = {}
        for unit in sorted(members.values()):
            target = specs[unit[0]].info.id
            units[target] = tuple(correlations[i] for i in unit)
            common = [
                name
                for name in specs[unit[0]].group_by
                if all(name in specs[i].group_by for i in unit)
            ]
            routed: set[str] = set()
            for i in unit:
                spec = specs[i]
                for ri, ref in enumerate(spec.refs):
                    if ref.key in index or ref.key in routed:
                        continue  # chained input (derived in the engine) or already keyed
                    routed.add(ref.key)
                    fields = tuple(spec.group_fields[ri][spec.group_by.index(n)] for n in common)
                    reads = _reads(ref.key, [specs[j] for j in unit])
                    routes.setdefault(ref.key, []).append(
                        Route(target, fields, ref.ecs_first, reads=reads, ecs_reads=reads)
                    )

        first_seen = FirstSeenEngine(rules, rule_ids=rule_ids).specs
        for fs in first_seen:
            reads = fs.group_by + fs.fields
            if fs.group_by:
                route = Route(fs.info.id, fs.group_by, fs.ecs_first, ecs_reads=reads)
            else:
                network = (fs.network, fs.network6) if fs.network is not None else None
                route = Route(fs.info.id, fs.fields, fs.ecs_first, network, ecs_reads=reads)
            routes.setdefault(fs.info.id, []).append(route)

        self.units: Mapping[str, tuple[SigmaCorrelationRule, ...]] = units
        self.first_seen_ids: frozenset[str] = frozenset(fs.info.id for fs in first_seen)
        self._routes = {rule: tuple(r) for rule, r in routes.items()}

    @property
    def rule_ids(self) -> frozenset[str]:
        """The ``Match.rule.id`` values that feed some stateful rule."""
        return frozenset(self._routes)

    def routes(self, rule_id: str) -> tuple[Route, ...]:
        """The routes of matches of ``rule_id`` (empty when no stateful rule needs them)."""
        return self._routes.get(rule_id, ())

    def routing_keys(self, match: Match) -> list[tuple[str, str]]:
        """``(target, key)`` for every stateful target ``match`` feeds and can be keyed for."""
        return [(target, key) for target, key, *_ in self.route(match)]

    def route(self, match: Match) -> list[Routed]:
        """``(target, key, native values, ECS values, native look-ups)`` for every stateful
        target ``match`` feeds and can be keyed for. The native values are those the
        target reads, by field name (a look-up of the name in them gives what it gives in
        the whole record); ``None`` when the target needs the whole native record, and
        then the native look-ups hold what a look-up of each field the target reads gives
        in it (:data:`MISSING` included). The ECS values are the same for the ECS
        document. Each holds the fields the engines read there: those of the side they try
        first, and of the other side those the first lacks. With them the correlate stage
        need not parse either document."""
        routes = self._routes.get(match.rule.id)
        if not routes:
            return []
        raw, ecs = match.event.raw, match.event.ecs
        out: list[Routed] = []
        for route in routes:
            values: list[str] = []
            for name in route.fields:
                text = key_text(resolve_field(raw, ecs, name, ecs_first=route.ecs_first))
                if text is None:
                    break
                if route.network is not None:
                    text = _network(text, *route.network)
                values.append(text)
            else:
                native = {name: lookup(raw, name) for name in route.ecs_reads}
                # the engines read the second side only for a field the first lacks
                first = route.ecs_first
                projection = {
                    name: lookup(ecs, name)
                    for name, value in native.items()
                    if first or value is MISSING
                }
                slim = looked = None
                if route.reads is None:
                    looked = {
                        name: value
                        for name, value in native.items()
                        if not first or projection[name] is MISSING
                    }
                else:
                    slim = {}
                    for name in route.reads:
                        value = native[name] if name in native else lookup(raw, name)
                        if value is not MISSING:
                            slim[name] = value
                out.append((route.target, key_id(values), slim, projection, looked))
        return out


def _reads(rule: str, specs: Sequence[CorrelationSpec]) -> tuple[str, ...]:
    """The native fields the correlations ``specs`` read from a match of ``rule``."""
    names: set[str] = set()
    for spec in specs:
        for ri, ref in enumerate(spec.refs):
            if ref.key == rule:
                names.update(spec.group_fields[ri])
                value = spec.value_fields[ri]
                if value is not None:
                    names.add(value)
    return tuple(sorted(names))
