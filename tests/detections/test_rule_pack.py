"""Every test case of detections/tests/ against its mirrored rule of detections/rules/."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from conftest import pack_rules

from detector.app.authoring.cases import TestCase, collect_cases, run_case
from detector.detect import RuleSet

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "detections" / "rules"
TESTS = ROOT / "detections" / "tests"

PAIRS, PROBLEMS = collect_cases(RULES, TESTS)


@cache
def ruleset(rule_file: Path) -> RuleSet:
    """The rule file loaded once per session, with the example placeholder values."""
    return pack_rules([rule_file])


def test_every_rule_file_has_loadable_cases() -> None:
    """Each rule file has a test file whose cases parse (listed all at once)."""
    assert not PROBLEMS, "\n".join(PROBLEMS)
    assert len({rule for rule, _ in PAIRS}) == len(list(RULES.rglob("*.yml")))


@pytest.mark.parametrize(("rule_file", "case"), PAIRS, ids=[c.label for _, c in PAIRS])
def test_case(rule_file: Path, case: TestCase) -> None:
    """The case's records raise exactly the expected alerts of its rule file, nothing else."""
    rules = ruleset(rule_file)
    assert not rules.errors, "\n".join(str(e) for e in rules.errors)
    result = run_case(rules, case)
    assert result.passed, "\n".join(result.diff())
