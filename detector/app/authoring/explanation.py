"""``detector rules explain``: which selections of a rule held for one native record, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.app.authoring.cases import normalize_all, primary_rule
from detector.app.authoring.listing import rule_rows
from detector.app.authoring.rulefiles import error_message, rule_type
from detector.app.rulepack import RuleLoader
from detector.detect import Explanation, RuleSet, explain, load_rules
from detector.detect.correlation import rule_key
from detector.detect.rulefiles import RULE_SUFFIXES


@dataclass(frozen=True)
class RuleExplanation:
    """One native record against one rule: an explanation per detection rule involved.

    For a correlation, each referenced detection rule is explained (the correlation
    itself is stateful and needs a stream: use ``rules test`` for it).
    """

    rule_id: str
    title: str
    type: str
    events: int
    explanations: tuple[Explanation, ...]
    errors: tuple[str, ...] = ()

    @property
    def matched(self) -> bool:
        """Whether any explained detection rule matched any event."""
        return any(e.matched for e in self.explanations)


def resolve_rule(
    ref: str, rules: Sequence[Path | str], load: RuleLoader = load_rules
) -> tuple[RuleSet, str]:
    """(rules loaded, key of the rule) for ``ref``: a rule file path, id, name or title.

    A path loads that file alone (its last document is the rule, as in test files);
    anything else is looked up among the rules under ``rules``. Raise LookupError
    (with the rejection reasons if the rule was rejected).
    """
    path = Path(ref)
    if path.suffix in RULE_SUFFIXES and path.is_file():
        ruleset = load([path])
        key = primary_rule(path)
        if key is None:
            raise LookupError(f"{path}: no rule document found")
    else:
        ruleset = load(rules)
        key = ref
    try:
        info = ruleset.info(key)
        return ruleset, info.id
    except KeyError:
        pass
    for row in rule_rows(ruleset):
        if row.title == key:
            return ruleset, row.id
    rejected = [error_message(e) for e in ruleset.errors if key in str(e)]
    detail = ("; rejected: " + " | ".join(rejected)) if rejected else ""
    raise LookupError(f"no loaded rule with id, name or title {key!r}{detail}")


def _detections_of(ruleset: RuleSet, key: str) -> tuple[str, list[str]]:
    """(type, ids of the detection rules to explain) for rule ``key``, recursively."""
    for rule in ruleset.rules:
        if rule.info.id == key:
            return rule_type(rule.sigma), [key]
    for corr in ruleset.correlations:
        if rule_key(corr) == key:
            ids: list[str] = []
            for ref in corr.rules or ():
                target = ruleset.names.get(ref.reference, ref.reference)
                ids.extend(i for i in _detections_of(ruleset, target)[1] if i not in ids)
            return rule_type(corr), ids
    return "sigma", []


def explain_record(ruleset: RuleSet, key: str, document: Any, source: str) -> RuleExplanation:
    """Explain rule ``key`` (as returned by :func:`resolve_rule`) over one native document.

    The document is normalized like on Kafka (envelopes unwrapped, so it may hold several
    records); every resulting event is explained against every detection rule involved.
    Raise ValueError for an unknown ``source``.
    """
    info = ruleset.info(key)
    kind, ids = _detections_of(ruleset, info.id)
    events, norm_errors = normalize_all([document], source)
    errors = [f"record not normalized: {e}" for e in norm_errors]
    explanations = tuple(explain(ruleset, rid, event) for event in events for rid in ids)
    return RuleExplanation(info.id, info.title, kind, len(events), explanations, tuple(errors))
