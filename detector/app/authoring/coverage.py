"""``detector rules coverage``: which ATT&CK tactics and techniques the loaded rules cover.

Counts the rules that raise alerts of their own (building blocks of ``generate: false``
correlations are left out: they cover nothing by themselves), per tactic of the project's
ATT&CK table (:mod:`detector.app.authoring.attack`), and renders an ATT&CK Navigator layer
(layer format 4.5) with one entry per technique scored by its rule count.

Sigma tags do not pair a technique with a tactic, so a tactic's techniques in the table
are those of the rules tagged with it, and the layer leaves each technique's tactic to
the Navigator (it shows the technique under every tactic ATT&CK files it under).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from detector.app.authoring.attack import (
    ATTACK_VERSION,
    TACTICS,
    TECHNIQUES,
    attack_tags,
    technique_url,
)
from detector.app.authoring.listing import RuleRow, rule_rows
from detector.detect import RuleSet

#: Navigator layer format this module writes, and the oldest Navigator that reads it.
LAYER_FORMAT = "4.5"
NAVIGATOR_VERSION = "5.2.0"


@dataclass(frozen=True, slots=True)
class TacticCoverage:
    """One row of the coverage table: a tactic, its techniques and the rules tagged with it."""

    tactic: str
    techniques: tuple[str, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Coverage:
    """ATT&CK coverage of a rule set.

    ``tactics`` has a row per tactic of the table, in matrix order (covered or not);
    ``techniques`` maps a technique id to the titles of its rules; ``untagged`` lists the
    rules with no ATT&CK tag at all.
    """

    tactics: tuple[TacticCoverage, ...]
    techniques: dict[str, tuple[str, ...]]
    untagged: tuple[str, ...]
    rule_count: int

    @property
    def covered(self) -> tuple[TacticCoverage, ...]:
        """The tactics at least one rule is tagged with."""
        return tuple(t for t in self.tactics if t.rules)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the table, not the layer)."""
        return {
            "rules": self.rule_count,
            "tactics": [
                {
                    "tactic": t.tactic,
                    "id": TACTICS[t.tactic].id,
                    "name": TACTICS[t.tactic].name,
                    "techniques": list(t.techniques),
                    "rules": len(t.rules),
                }
                for t in self.tactics
            ],
            "untagged": list(self.untagged),
        }


def _tags(row: RuleRow) -> list[tuple[str, str]]:
    return [(ns, name) for ns, _, name in (tag.partition(".") for tag in row.tags)]


def coverage(ruleset: RuleSet) -> Coverage:
    """The ATT&CK coverage of the rules of ``ruleset`` that raise alerts."""
    rows = [r for r in rule_rows(ruleset) if ruleset.generates(r.id)]
    by_tactic: dict[str, list[RuleRow]] = defaultdict(list)
    techniques_of: dict[str, set[str]] = defaultdict(set)
    techniques: dict[str, list[str]] = defaultdict(list)
    untagged: list[str] = []
    for row in rows:
        found = attack_tags(_tags(row))
        if not found.tactics and not found.techniques:
            untagged.append(row.title)
        for tactic in found.tactics:
            by_tactic[tactic].append(row)
            techniques_of[tactic].update(found.techniques)
        for technique in found.techniques:
            techniques[technique].append(row.title)
    table = tuple(
        TacticCoverage(
            name,
            tuple(sorted(techniques_of[name])),
            tuple(r.title for r in by_tactic[name]),
        )
        for name in TACTICS
    )
    return Coverage(
        tactics=table,
        techniques={k: tuple(v) for k, v in sorted(techniques.items())},
        untagged=tuple(untagged),
        rule_count=len(rows),
    )


def navigator_layer(cover: Coverage, name: str = "detector rules") -> dict[str, Any]:
    """An ATT&CK Navigator layer (format 4.5): each technique the rules name, scored by
    the number of rules, with their titles in the comment."""
    entries: list[dict[str, Any]] = []
    for technique, titles in cover.techniques.items():
        entry = {
            "techniqueID": technique,
            "score": len(titles),
            "comment": "; ".join(titles),
            "enabled": True,
            "showSubtechniques": "." not in technique,
            "links": [
                {"label": TECHNIQUES.get(technique, technique), "url": technique_url(technique)}
            ],
        }
        entries.append(entry)
    top = max((e["score"] for e in entries), default=0)
    return {
        "name": name,
        "versions": {
            "attack": ATTACK_VERSION,
            "navigator": NAVIGATOR_VERSION,
            "layer": LAYER_FORMAT,
        },
        "domain": "enterprise-attack",
        "description": (
            f"ATT&CK coverage of {cover.rule_count} alerting rule(s); "
            "score = number of rules per technique and tactic."
        ),
        "sorting": 3,
        "layout": {"layout": "side", "showID": True, "showName": True},
        "hideDisabled": False,
        "techniques": entries,
        "gradient": {
            "colors": ["#ffffff", "#66b1ff", "#0050a0"],
            "minValue": 0,
            "maxValue": max(top, 1),
        },
        "legendItems": [],
        "metadata": [
            {"name": "tactics covered", "value": f"{len(cover.covered)} of {len(cover.tactics)}"},
        ],
        "selectTechniquesAcrossTactics": True,
        "selectSubtechniquesWithParent": False,
    }
