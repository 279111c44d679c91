"""``detector rules list``: one row per loaded rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from detector.app.authoring.rulefiles import rule_path, rule_type
from detector.detect import RuleSet
from detector.detect.correlation import rule_key


@dataclass(frozen=True, slots=True)
class RuleRow:
    """One row of ``detector rules list``."""

    id: str
    title: str
    level: str
    logsource: str
    tags: tuple[str, ...]
    type: str
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def rule_rows(ruleset: RuleSet) -> list[RuleRow]:
    """Rows for every loaded rule: detections (``sigma`` or ``first-seen``), then correlations.

    A correlation's log source is the list of rules it references.
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
    return rows
