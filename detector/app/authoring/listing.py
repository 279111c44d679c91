"""``detector rules list``: one row per loaded rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from detector.app.authoring.rulefiles import rule_path, rule_type
from detector.detect import RuleSet
from detector.detect.correlation import rule_key
from detector.detect.policy import RuleState
from detector.models import Suppression


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One row of ``detector rules list``.

    ``state`` is ``enabled``, ``building block`` or ``disabled`` under the rule policy,
    ``why`` the reasons, ``level`` the level alerts carry (after overrides),
    ``exceptions`` the ids of the exceptions that apply to its matches and
    ``suppression`` how its alerts are grouped (``user.name per 3600s``; empty: not).
    """

    id: str
    title: str
    level: str
    logsource: str
    tags: tuple[str, ...]
    type: str
    path: str | None
    state: str = "enabled"
    why: str = ""
    exceptions: tuple[str, ...] = ()
    suppression: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def rule_rows(ruleset: RuleSet, states: Sequence[RuleState] = ()) -> list[RuleRow]:
    """Rows for every loaded rule: detections (``sigma`` or ``first-seen``), then correlations.

    A correlation's log source is the list of rules it references. ``states`` (from
    :func:`detector.detect.policy.apply_policy` over ``ruleset``) fills the effective
    state, level, reasons and exceptions of each row.
    """
    rows = [
        RuleRow(
            id=rule.info.id,
            title=rule.info.title,
            level=rule.info.level,
            logsource=rule.scope.describe(),
            tags=rule.info.tags,
            type=rule_type(rule.sigma),
            path=rule.path,
        )
        for rule in ruleset.rules
    ]
    for corr in ruleset.correlations:
        info = ruleset.info(rule_key(corr))
        refs = ", ".join(ref.reference for ref in corr.rules or ())
        rows.append(
            RuleRow(
                id=info.id,
                title=info.title,
                level=info.level,
                logsource=f"rules: {refs}" if refs else "-",
                tags=info.tags,
                type=rule_type(corr),
                path=rule_path(corr),
            )
        )
    by_id = {s.id: s for s in states}
    return [
        replace(
            row,
            state=s.state,
            why=s.why,
            level=s.level,
            exceptions=s.exceptions,
            suppression=_grouping(s.suppression),
        )
        if (s := by_id.get(row.id)) is not None
        else row
        for row in rows
    ]


def _grouping(suppression: Suppression | None) -> str:
    if suppression is None:
        return ""
    fields = ", ".join(suppression.group_by) or "rule"
    return f"{fields} per {suppression.window_seconds:g}s"
