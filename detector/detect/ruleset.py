"""The result of loading rules: compiled detection rules, correlation rules, and problems."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule, SigmaRuleBase

from detector.detect.compiler import Predicate, Requirements
from detector.detect.exceptions import ExceptionSet
from detector.detect.logsources import Scope
from detector.detect.suppression import suppression_or_none
from detector.errors import RuleError
from detector.models import Event, RuleInfo


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """One detection rule compiled for evaluation.

    ``matches`` is the rule's predicate over the record its ``scope`` reads (``Event.raw``
    for native rules, ``Event.ecs`` for ECS rules); ``selections`` holds the predicate of
    each of the rule's own named detections (for ``Match.selections`` and explanations);
    ``requirements`` the literal values every match needs (for the index).
    ``generates`` is False when the rule is only a building block of correlations whose
    ``generate`` is false (Sigma v2: such rules emit no alerts of their own).
    """

    info: RuleInfo
    name: str | None
    scope: Scope
    matches: Predicate
    selections: tuple[tuple[str, Predicate], ...]
    requirements: Requirements
    sigma: SigmaRule
    path: str | None
    ordinal: int
    generates: bool = True

    def record(self, event: Event) -> Mapping[str, Any]:
        """The record this rule reads on ``event`` (``ecs`` for ECS rules, else ``raw``);
        field values for correlation group-by come from it (see :func:`fields.getter`).
        """
        return event.ecs if self.scope.ecs else event.raw

    def held(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """Names of the rule's detections that hold on ``record``."""
        return tuple(name for name, pred in self.selections if pred(record))


@dataclass(frozen=True)
class RuleSet:
    """Everything loaded from rule paths.

    ``rules`` compiled; ``correlations`` parsed by pySigma with rule references resolved
    (``rule_ref.rule`` is the referenced ``SigmaRule``/``SigmaCorrelationRule``), handed
    over untouched; ``errors`` every rejected rule or file (with path and line);
    ``warnings`` validator findings that do not stop a rule; ``names`` maps rule names
    (``name:``) to ids, for correlation references; ``silent`` holds the ids of rules
    referenced by a correlation with ``generate: false`` (no alerts of their own);
    ``placeholders`` the ``expand`` values the rules were compiled with; ``exceptions``
    the exceptions the engine applies to matches (see :mod:`detector.detect.policy`);
    ``disabled`` the rules left out on purpose (a placeholder without values,
    ``missing_placeholders: disable``).
    """

    rules: tuple[CompiledRule, ...]
    correlations: tuple[SigmaCorrelationRule, ...] = ()
    errors: tuple[RuleError, ...] = ()
    warnings: tuple[RuleError, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)
    silent: frozenset[str] = frozenset()
    placeholders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exceptions: ExceptionSet = field(default_factory=ExceptionSet)
    disabled: tuple[RuleError, ...] = ()
    _infos: Mapping[str, RuleInfo] = field(default_factory=dict, repr=False)

    @property
    def rejected(self) -> int:
        """How many rules or files were rejected (one error each)."""
        return len(self.errors)

    @property
    def reads_ecs(self) -> bool:
        """Whether a rule reads ECS fields (``product: ecs``): such rules apply to every
        event, so every event needs its ECS document before matching."""
        return any(rule.scope.ecs for rule in self.rules)

    def info(self, rule_id: str) -> RuleInfo:
        """The :class:`RuleInfo` of a detection or correlation rule by id or name."""
        key = self.names.get(rule_id, rule_id)
        try:
            return self._infos[key]
        except KeyError:
            raise KeyError(f"no loaded rule with id or name {rule_id!r}") from None

    def generates(self, rule_id: str) -> bool:
        """Whether the rule (detection or correlation) emits alerts of its own."""
        return self.names.get(rule_id, rule_id) not in self.silent

    def rule(self, rule_id: str) -> CompiledRule:
        """The compiled detection rule by id or name."""
        key = self.names.get(rule_id, rule_id)
        for r in self.rules:
            if r.info.id == key:
                return r
        raise KeyError(f"no compiled detection rule with id or name {rule_id!r}")


def rule_level(rule: SigmaRuleBase) -> str:
    """The rule's Sigma level in lower case; ``medium`` when it has none."""
    return str(rule.level) if rule.level is not None else "medium"


def rule_info(rule: SigmaRuleBase) -> RuleInfo:
    """The alert-facing facts of a Sigma detection or correlation rule."""
    kind = "sigma"
    if isinstance(rule, SigmaCorrelationRule):
        kind = str(rule.type)
    return RuleInfo(
        id=str(rule.id) if rule.id is not None else "",
        title=rule.title,
        level=rule_level(rule),
        description=(rule.description or "").strip(),
        tags=tuple(f"{t.namespace}.{t.name}" for t in rule.tags),
        references=tuple(rule.references),
        falsepositives=tuple(str(fp) for fp in rule.falsepositives),
        author=(str(rule.author),) if rule.author else (),
        type=kind,
        suppression=suppression_or_none(rule),
    )
