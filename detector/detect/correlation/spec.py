"""Compiled form of a pySigma correlation rule: what the window engine needs, checked once.

Everything the engine cannot evaluate is rejected here with a :class:`RuleError`, so a
rule is never silently half-supported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigma.correlations import (
    CorrelationConditionAND,
    CorrelationConditionNOT,
    CorrelationConditionOR,
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaExtendedCorrelationCondition,
    SigmaRuleReference,
)
from sigma.rule import SigmaRule

from detector.detect.suppression import suppression_or_none
from detector.errors import RuleError
from detector.models import RuleInfo

#: Correlation types the engine evaluates (Sigma 2.1 plus pySigma's ``value_median``).
TYPES = (
    "event_count",
    "value_count",
    "temporal",
    "temporal_ordered",
    "value_sum",
    "value_avg",
    "value_percentile",
    "value_median",
)

#: Types whose measure only grows as matches join a window (``value_sum`` assumes
#: non-negative quantities such as bytes). With ``gt``/``gte`` they fire as soon as the
#: condition holds; with ``lt``/``lte``/``eq``/``neq`` the final count of a window
#: matters, so they are decided when the window closes.
GROWING = frozenset({"event_count", "value_count", "temporal", "temporal_ordered", "value_sum"})

#: Statistics of the values in the window: evaluated on every arrival over the sliding
#: window ending at that match, whatever the operator.
STATISTICS = frozenset({"value_avg", "value_percentile", "value_median"})

#: Operators a growing measure can satisfy early, on arrival.
GROW_OPS = frozenset({"gt", "gte"})

OPS: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}
SYMBOLS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "==", "neq": "!="}

#: A compiled extended temporal condition: the set of rule positions seen -> holds?
Expression = Callable[[frozenset[int]], bool]


def rule_key(rule: Any) -> str:
    """The identity a rule's matches carry in ``Match.rule.id``: its id, else name, else title.

    The single-event engine must build ``RuleInfo.id`` the same way so correlations find
    the matches of the rules they reference.
    """
    rid = getattr(rule, "id", None)
    if rid is not None:
        return str(rid)
    name = getattr(rule, "name", None)
    return str(name) if name else str(getattr(rule, "title", ""))


def rule_info(rule: Any, type_: str = "sigma") -> RuleInfo:
    """The :class:`RuleInfo` an alert of pySigma rule ``rule`` carries."""
    level = getattr(rule, "level", None)
    tags = tuple(f"{t.namespace}.{t.name}" for t in (getattr(rule, "tags", None) or ()))
    return RuleInfo(
        id=rule_key(rule),
        title=str(rule.title),
        level=level.name.lower() if level is not None else "medium",
        description=str(getattr(rule, "description", None) or ""),
        tags=tags,
        references=tuple(str(r) for r in (getattr(rule, "references", None) or ())),
        falsepositives=tuple(str(f) for f in (getattr(rule, "falsepositives", None) or ())),
        type=type_,
        suppression=suppression_or_none(rule),
    )


def rule_location(rule: Any) -> str | None:
    """The file a pySigma rule came from, when pySigma recorded it."""
    source = getattr(rule, "source", None)
    path = getattr(source, "path", None)
    return str(path) if path is not None else None


@dataclass(frozen=True, slots=True)
class Ref:
    """One rule a correlation references: the ``Match.rule.id`` it listens to and how
    its fields resolve (``ecs_first`` for ``product: ecs`` rules)."""

    reference: str
    key: str
    title: str
    ecs_first: bool
    chained: bool


@dataclass(frozen=True, slots=True)
class CorrelationSpec:
    """A correlation rule compiled for the window engine.

    ``group_fields[i]`` / ``value_fields[i]`` are the field names to read from matches of
    ``refs[i]`` (aliases applied). ``early`` tells whether the condition is checked on
    every arrival over the window ending there, or once per window when it closes.
    """

    info: RuleInfo
    type: str
    refs: tuple[Ref, ...]
    group_by: tuple[str, ...]
    group_fields: tuple[tuple[str, ...], ...]
    value_field: str | None
    value_fields: tuple[str | None, ...]
    op: str
    threshold: float
    percentile: float | None
    timespan: float
    timespan_text: str
    early: bool
    expression: Expression | None
    expression_text: str | None
    emit: bool

    def holds(self, measure: float) -> bool:
        """Whether ``measure`` satisfies the rule's condition."""
        return OPS[self.op](measure, self.threshold)

    def condition_text(self) -> str:
        """The condition for humans, e.g. ``>= 10 in 5m``."""
        if self.expression_text is not None:
            return f"{self.expression_text} in {self.timespan_text}"
        pct = f"p{self.percentile:g} " if self.percentile is not None else ""
        return f"{pct}{SYMBOLS[self.op]} {self.threshold:g} in {self.timespan_text}"


def _fail(rule: SigmaCorrelationRule, message: str) -> RuleError:
    return RuleError(f"correlation rule '{rule.title}': {message}", path=rule_location(rule))


def _references(rule: SigmaCorrelationRule) -> list[SigmaRuleReference]:
    if rule.referenced_rules:
        return list(rule.referenced_rules)
    if rule.rules is not None:
        return list(rule.rules)
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        return [SigmaRuleReference(r) for r in rule.condition.get_referenced_rules()]
    return []


def _ref_key(ref: SigmaRuleReference, rule_ids: Mapping[str, str]) -> tuple[str, Any]:
    if ref.reference in rule_ids:
        return rule_ids[ref.reference], getattr(ref, "rule", None)
    target = getattr(ref, "rule", None)
    if target is not None:
        key = rule_key(target)
        return rule_ids.get(key, key), target
    return ref.reference, None


def _compile_expression(node: Any, positions: Mapping[str, int]) -> tuple[Expression, bool]:
    """Compile an extended condition tree; the flag says whether it contains ``not``."""
    if isinstance(node, SigmaRuleReference):
        pos = positions[node.reference]
        return (lambda seen: pos in seen), False
    parts = [_compile_expression(arg, positions) for arg in node.args]
    fns = [p[0] for p in parts]
    has_not = any(p[1] for p in parts)
    if isinstance(node, CorrelationConditionNOT):
        inner = fns[0]
        return (lambda seen: not inner(seen)), True
    if isinstance(node, CorrelationConditionAND):
        return (lambda seen: all(f(seen) for f in fns)), has_not
    if isinstance(node, CorrelationConditionOR):
        return (lambda seen: any(f(seen) for f in fns)), has_not
    raise TypeError(f"unknown condition node {type(node).__name__}")


def compile_correlation(
    rule: SigmaCorrelationRule,
    *,
    rule_ids: Mapping[str, str] | None = None,
    correlation_keys: Sequence[str] = (),
) -> CorrelationSpec:
    """Compile ``rule``; raise :class:`RuleError` for anything the engine cannot evaluate.

    ``rule_ids`` maps a reference (as written under ``rules:``, name or id) to the
    ``Match.rule.id`` of that rule when it differs from :func:`rule_key`;
    ``correlation_keys`` are the keys of the correlations loaded with it (chaining).
    """
    ids = rule_ids or {}
    type_ = str(rule.type.name).lower() if rule.type is not None else ""
    if type_ not in TYPES:
        raise _fail(rule, f"correlation type '{type_}' is not supported")
    references = _references(rule)
    if not references:
        raise _fail(rule, "no rules referenced")
    refs: list[Ref] = []
    for ref in references:
        key, target = _ref_key(ref, ids)
        chained = isinstance(target, SigmaCorrelationRule) or key in correlation_keys
        ecs_first = (
            not chained
            and isinstance(target, SigmaRule)
            and target.logsource is not None
            and str(target.logsource.product or "").lower() == "ecs"
        )
        title = str(getattr(target, "title", None) or ref.reference)
        refs.append(
            Ref(reference=ref.reference, key=key, title=title, ecs_first=ecs_first, chained=chained)
        )
    if len({r.key for r in refs}) != len(refs):
        raise _fail(rule, "the same rule is referenced twice")

    positions = {r.reference: i for i, r in enumerate(refs)}
    # Alias mappings name rules by reference; map both reference and key to a position.
    positions_by_any = dict(positions) | {r.key: i for i, r in enumerate(refs)}

    def field_for(name: str) -> tuple[str, ...]:
        alias = rule.aliases.aliases.get(name) if rule.aliases is not None else None
        if alias is None:
            return tuple(name for _ in refs)
        per_pos: dict[int, str] = {}
        for alias_ref, field_name in alias.mapping.items():
            key, _ = _ref_key(alias_ref, ids)
            pos = positions_by_any.get(alias_ref.reference, positions_by_any.get(key))
            if pos is None:
                raise _fail(
                    rule,
                    f"alias '{name}' maps rule '{alias_ref.reference}' "
                    "which the correlation does not reference",
                )
            per_pos[pos] = str(field_name)
        missing = [refs[i].reference for i in range(len(refs)) if i not in per_pos]
        if missing:
            raise _fail(rule, f"alias '{name}' has no field for rule(s) {', '.join(missing)}")
        return tuple(per_pos[i] for i in range(len(refs)))

    group_by = tuple(str(g) for g in (rule.group_by or ()))
    per_group = [field_for(g) for g in group_by]
    group_fields = tuple(tuple(pg[i] for pg in per_group) for i in range(len(refs)))

    condition = rule.condition
    expression: Expression | None = None
    expression_text: str | None = None
    has_not = False
    op, threshold, percentile = "gte", float(len(refs)), None
    value_field: str | None = None
    if isinstance(condition, SigmaExtendedCorrelationCondition):
        if type_ != "temporal":
            raise _fail(rule, "an extended (boolean) condition is only supported for 'temporal'")
        try:
            expression, has_not = _compile_expression(condition.parsed, positions_by_any)
        except KeyError as exc:
            raise _fail(rule, f"condition names unknown rule {exc}") from None
        expression_text = condition.expression
    elif isinstance(condition, SigmaCorrelationCondition):
        op = condition.op.name.lower()
        threshold = float(condition.count)
        fieldref = condition.fieldref
        if isinstance(fieldref, list):
            if len(fieldref) != 1:
                raise _fail(rule, "the condition field must name exactly one field")
            fieldref = fieldref[0]
        value_field = str(fieldref) if fieldref is not None else None
        if condition.percentile is not None:
            percentile = float(condition.percentile)
    if type_ == "value_median":
        percentile = 50.0
    if type_ == "value_percentile":
        if percentile is None:
            raise _fail(rule, "value_percentile needs 'percentile' (0-100) in the condition")
        if not 0 <= percentile <= 100:
            raise _fail(rule, "percentile must be between 0 and 100")
    if type_.startswith("value_") and value_field is None:
        raise _fail(rule, f"{type_} needs 'field' in the condition")
    value_fields: tuple[str | None, ...] = (
        field_for(value_field) if value_field is not None else tuple(None for _ in refs)
    )

    # A 'not' in an extended condition can turn false later, so such rules wait for close.
    early = (not has_not) if expression is not None else (type_ in STATISTICS or op in GROW_OPS)
    return CorrelationSpec(
        info=rule_info(rule, type_),
        type=type_,
        refs=tuple(refs),
        group_by=group_by,
        group_fields=group_fields,
        value_field=value_field,
        value_fields=value_fields,
        op=op,
        threshold=threshold,
        percentile=percentile,
        timespan=float(rule.timespan.seconds),
        timespan_text=str(rule.timespan.spec),
        early=early,
        expression=expression,
        expression_text=expression_text,
        emit=bool(getattr(rule, "_output", True)),
    )
