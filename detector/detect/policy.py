"""Rule policy outside the rules: which loaded rules run, at which level, with which exceptions.

:func:`apply_policy` turns a loaded :class:`RuleSet` into the effective one and says, rule
by rule, what it did and why (:class:`RuleState`). The settings it reads:

- ``disabled``: rule ids or names turned off;
- ``min_level``: rules below this level (after overrides) are off;
- ``statuses``: only rules with one of these Sigma statuses run (a rule without a
  status counts as ``experimental``, Sigma's least settled status);
- ``level_overrides``: rule id or name -> the level its alerts carry.

A rule that is off but referenced by a correlation that stays on keeps running as a
*building block*: its matches still feed the correlation, it raises no alert of its own
(as with Sigma's ``generate: false``). A correlation that is off but referenced by another
correlation that stays on keeps running the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaLevel, SigmaRuleBase

from detector.detect.correlation.spec import rule_key
from detector.detect.exceptions import RuleException, index_exceptions
from detector.detect.ruleset import CompiledRule, RuleSet, rule_info, rule_level
from detector.detect.suppression import SuppressionDefaults, resolved, suppression_or_none
from detector.models import Suppression
from detector.models.alerts import level_rank

Status = Literal["stable", "test", "experimental", "deprecated", "unsupported"]
State = Literal["enabled", "building block", "disabled"]
_R = TypeVar("_R", bound=SigmaRuleBase)


@dataclass(frozen=True)
class RulePolicy:
    """The ``rules`` settings that decide which rules run and how (see module doc)."""

    disabled: Collection[str] = ()
    min_level: str | None = None
    statuses: Collection[str] | None = None
    level_overrides: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleState:
    """The effective state of one loaded rule and the reasons for it.

    ``level`` is the level its alerts carry; ``exceptions`` the ids of the exceptions
    that apply to its matches; ``suppression`` how its alerts are grouped (once
    :func:`apply_suppression` ran).
    """

    id: str
    title: str
    state: State
    level: str
    reasons: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    suppression: Suppression | None = None

    @property
    def why(self) -> str:
        """The reasons as one line (empty when nothing changed the rule)."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class EffectivePolicy:
    """What :func:`apply_policy` produced: the rule set to run and every rule's state."""

    ruleset: RuleSet
    states: tuple[RuleState, ...]

    def state(self, rule: str) -> RuleState:
        """The state of a rule by id or name."""
        key = self.ruleset.names.get(rule, rule)
        for s in self.states:
            if s.id == key:
                return s
        raise KeyError(f"no loaded rule with id or name {rule!r}")


def apply_policy(
    ruleset: RuleSet,
    policy: RulePolicy | None = None,
    exceptions: Sequence[RuleException] = (),
) -> EffectivePolicy:
    """The effective rule set under ``policy`` and ``exceptions``, with each rule's state.

    Never raises: ids in the policy that name no loaded rule are ignored here (see
    :func:`unknown_references`).
    """
    policy = policy or RulePolicy()
    names = dict(ruleset.names)

    def resolve(ref: str) -> str:
        return names.get(ref, ref)

    disabled = {resolve(r) for r in policy.disabled}
    overrides = {resolve(k): v for k, v in policy.level_overrides.items()}

    every: list[SigmaRuleBase] = [*(r.sigma for r in ruleset.rules), *ruleset.correlations]
    reasons: dict[str, list[str]] = {}
    levels: dict[str, str] = {}
    off: set[str] = set()
    for rule in every:
        rid = resolve(rule_key(rule))
        why = reasons.setdefault(rid, [])
        level = rule_level(rule)
        if rid in overrides and overrides[rid] != level:
            why.append(f"level {level} overridden to {overrides[rid]} (rules.level_overrides)")
            level = overrides[rid]
        levels[rid] = level
        if rid in disabled:
            off.add(rid)
            why.append("listed in rules.disabled")
        if policy.min_level is not None and level_rank(level) < level_rank(policy.min_level):
            off.add(rid)
            why.append(f"level {level} is below rules.min_level {policy.min_level}")
        status = rule.status.name.lower() if rule.status is not None else "experimental"
        if policy.statuses is not None and status not in policy.statuses:
            off.add(rid)
            why.append(f"status {status} is not in rules.statuses ({', '.join(policy.statuses)})")

    # Rules a running correlation needs stay as silent building blocks, transitively.
    correlations = {resolve(rule_key(c)): c for c in ruleset.correlations}
    needed: set[str] = set()
    todo = [cid for cid in correlations if cid not in off]
    while todo:
        corr = correlations[todo.pop()]
        for ref in corr.rules or ():
            rid = resolve(ref.reference)
            if rid in off and rid not in needed:
                needed.add(rid)
                reasons[rid].append(f"kept as a building block of {corr.title!r}")
                if rid in correlations:
                    todo.append(rid)

    rules = tuple(
        _compiled(r, levels[r.info.id])
        for r in ruleset.rules
        if r.info.id not in off or r.info.id in needed
    )
    kept_correlations = tuple(
        _correlation(c, levels[cid], silent=cid in off)
        for cid, c in correlations.items()
        if cid not in off or cid in needed
    )
    silent = set(ruleset.silent) | (needed - set(correlations))
    infos = {r.info.id: r.info for r in rules}
    infos.update({resolve(rule_key(c)): rule_info(c) for c in kept_correlations})
    effective = replace(
        ruleset,
        rules=rules,
        correlations=kept_correlations,
        silent=frozenset(silent),
        _infos=infos,
    )
    effective = replace(
        effective, exceptions=index_exceptions(exceptions, _exception_targets(effective))
    )
    # States list the exceptions of disabled rules too (as if they ran).
    targets = _exception_targets(ruleset)
    indexed = index_exceptions(exceptions, targets)

    states: list[RuleState] = []
    for rule in every:
        rid = resolve(rule_key(rule))
        state: State = "enabled"
        if rid in off:
            state = "building block" if rid in needed else "disabled"
        applied = tuple(e.id for e in indexed.for_rule(rid))
        if rid in correlations:
            applied = tuple(
                dict.fromkeys(e for t in targets.get(rid, ()) for e in _ids(indexed.for_rule(t)))
            )
        states.append(
            RuleState(
                id=rid,
                title=str(rule.title),
                state=state,
                level=levels[rid],
                reasons=tuple(reasons[rid]),
                exceptions=applied,
            )
        )
    return EffectivePolicy(effective, tuple(states))


def known_rules(ruleset: RuleSet) -> frozenset[str]:
    """Every key a setting or an exception may name a loaded rule by: id, name or title
    (:func:`rule_key`) of each detection and correlation rule, and each ``name:``."""
    known = {rule_key(r.sigma) for r in ruleset.rules}
    return frozenset(known | {rule_key(c) for c in ruleset.correlations} | set(ruleset.names))


def unknown_references(ruleset: RuleSet, policy: RulePolicy) -> list[str]:
    """Rule ids or names in ``policy`` that name no loaded rule (likely typos)."""
    known = known_rules(ruleset)
    named = [*policy.disabled, *policy.level_overrides]
    return sorted({n for n in named if n not in known})


def _ids(exceptions: Sequence[RuleException]) -> list[str]:
    return [e.id for e in exceptions]


def _exception_targets(ruleset: RuleSet) -> dict[str, tuple[str, ...]]:
    """Rule id or name -> detection-rule ids whose matches an exception on it filters."""
    names = dict(ruleset.names)
    targets: dict[str, tuple[str, ...]] = {}
    for rule in ruleset.rules:
        targets[rule.info.id] = (rule.info.id,)
    correlations = {names.get(rule_key(c), rule_key(c)): c for c in ruleset.correlations}

    def bases(cid: str, seen: frozenset[str]) -> tuple[str, ...]:
        out: list[str] = []
        for ref in correlations[cid].rules or ():
            rid = names.get(ref.reference, ref.reference)
            if rid in correlations and rid not in seen:
                out.extend(bases(rid, seen | {rid}))
            elif rid in targets:
                out.append(rid)
        return tuple(dict.fromkeys(out))

    for cid in correlations:
        targets[cid] = bases(cid, frozenset({cid}))
    for name, rid in names.items():
        if rid in targets:
            targets[name] = targets[rid]
    return targets


def _with_level(rule: _R, level: str) -> _R:
    """A shallow copy of a pySigma rule with ``level`` (engines read it from the rule)."""
    if rule_level(rule) == level:
        return rule
    changed = copy.copy(rule)
    changed.level = SigmaLevel[level.upper()]
    return changed


def _compiled(rule: CompiledRule, level: str) -> CompiledRule:
    if rule.info.level == level:
        return rule
    sigma = _with_level(rule.sigma, level)
    return replace(rule, sigma=sigma, info=rule.info.model_copy(update={"level": level}))


def _correlation(corr: SigmaCorrelationRule, level: str, *, silent: bool) -> SigmaCorrelationRule:
    changed = _with_level(corr, level)
    if silent:
        # Referenced by a running correlation: keep feeding it without alerting
        # (pySigma's ``_output`` flag, which the correlation engine honours).
        changed = copy.copy(changed) if changed is corr else changed
        changed._output = False
    assert isinstance(changed, SigmaCorrelationRule)
    return changed


def apply_suppression(ruleset: RuleSet, defaults: SuppressionDefaults) -> RuleSet:
    """``ruleset`` whose alerts carry each rule's suppression (``RuleInfo.suppression``)
    under the ``rules.suppression`` ``defaults``; malformed attributes are reported by
    :func:`detector.detect.suppression.suppression_errors`, not here."""
    rules = tuple(
        replace(
            rule,
            sigma=(sigma := resolved(rule.sigma, defaults)),
            info=rule.info.model_copy(update={"suppression": suppression_or_none(sigma)}),
        )
        for rule in ruleset.rules
    )
    correlations = tuple(resolved(c, defaults) for c in ruleset.correlations)
    infos = {r.info.id: r.info for r in rules}
    for corr in correlations:
        info = rule_info(corr)
        infos[info.id] = infos.get(info.id, info).model_copy(
            update={"suppression": info.suppression}
        )
    return replace(ruleset, rules=rules, correlations=correlations, _infos=infos)


def with_suppression(effective: EffectivePolicy, defaults: SuppressionDefaults) -> EffectivePolicy:
    """``effective`` under :func:`apply_suppression`, each running rule's state showing the
    suppression its alerts carry (a disabled rule is not in the rule set and shows none)."""
    ruleset = apply_suppression(effective.ruleset, defaults)
    states = tuple(
        s if s.state == "disabled" else replace(s, suppression=ruleset.info(s.id).suppression)
        for s in effective.states
    )
    return EffectivePolicy(ruleset, states)
