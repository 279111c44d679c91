"""The rule test-case runner (detector.app.authoring.cases): format, expansion and diffs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from detector.app.authoring.cases import (
    CaseFormatError,
    expand_events,
    load_cases,
    parse_span,
    run_case,
    run_tests,
    shift_time,
)
from detector.detect import load_rules

RULE = """\
title: Test Protected Branch Removed
id: 2f0b7a4e-51a4-4c1e-9d0b-9e6a4f7e8a01
status: experimental
description: test rule
references:
    - https://docs.github.com/
author: detector project
date: 2026-11-28
tags:
    - attack.defense-impairment
    - attack.t1685
logsource:
    product: github
    service: audit
detection:
    selection:
        action: protected_branch.destroy
    condition: selection
falsepositives:
    - none
level: high
"""

EVENT = {
    "@timestamp": 1795514400000,
    "_document_id": "doc-1",
    "action": "protected_branch.destroy",
    "actor": "kim",
    "org": "acme",
}


def write_pack(tmp_path: Path, cases: str) -> tuple[Path, Path]:
    rules, tests = tmp_path / "rules" / "ci", tmp_path / "tests" / "ci"
    rules.mkdir(parents=True)
    tests.mkdir(parents=True)
    (rules / "github_test.yml").write_text(RULE)
    (tests / "github_test.yml").write_text(cases)
    return rules / "github_test.yml", tests / "github_test.yml"


def test_shift_time_keeps_each_native_format() -> None:
    """ISO strings keep their Z and precision; GitHub epoch milliseconds stay integers."""
    assert shift_time({"eventTime": "2026-11-24T10:00:00Z"}, 90) == {
        "eventTime": "2026-11-24T10:01:30Z"
    }
    assert shift_time({"time": "2026-11-24T10:00:00.250000Z"}, 1)["time"] == (
        "2026-11-24T10:00:01.250000Z"
    )
    assert shift_time({"@timestamp": 1000, "created_at": 1000}, 2) == {
        "@timestamp": 3000,
        "created_at": 3000,
    }


def test_repeat_expands_with_index_and_time_step() -> None:
    """``repeat`` yields copies with ``${i}`` substituted and times ``every`` apart."""
    item = {
        "repeat": 3,
        "every": "1m",
        "record": {"eventTime": "2026-11-24T10:00:00Z", "name": "repo-${i}"},
    }
    records = expand_events([item, {"eventTime": "x"}])
    assert [r["name"] for r in records[:3]] == ["repo-0", "repo-1", "repo-2"]
    assert records[2]["eventTime"] == "2026-11-24T10:02:00Z"
    assert records[3] == {"eventTime": "x"}
    assert parse_span("2h") == 7200
    with pytest.raises(CaseFormatError):
        parse_span("soon")


def test_integer_expect_names_the_files_last_rule(tmp_path: Path) -> None:
    """``expect: N`` is shorthand for N alerts of the file's (last) rule."""
    rule_file, test_file = write_pack(
        tmp_path, "cases:\n  - name: m\n    events: [{action: x}]\n    expect: 2\n"
    )
    (case,) = load_cases(test_file, rule_file)
    assert case.expect == {"2f0b7a4e-51a4-4c1e-9d0b-9e6a4f7e8a01": 2}


def test_passing_and_failing_cases_report_expected_versus_actual(tmp_path: Path) -> None:
    """A wrong expectation fails with a diff naming the rule and both counts."""
    cases = {
        "cases": [
            {"name": "match", "source": "ci", "events": [EVENT], "expect": 1},
            {"name": "wrong", "source": "ci", "events": [EVENT], "expect": 0},
        ]
    }
    rule_file, test_file = write_pack(tmp_path, yaml.safe_dump(cases))
    ruleset = load_rules([rule_file])
    good, bad = (run_case(ruleset, c) for c in load_cases(test_file, rule_file))
    assert good.passed
    assert not bad.passed
    (line, reason) = bad.diff()
    assert line == (
        "Test Protected Branch Removed [2f0b7a4e-51a4-4c1e-9d0b-9e6a4f7e8a01]: "
        "expected 0 alert(s), got 1"
    )
    assert "protected_branch.destroy" in reason


def test_unknown_rule_and_bad_records_are_errors(tmp_path: Path) -> None:
    """Naming a rule that is not loaded, or a record that cannot normalize, fails the case."""
    cases = [{"name": "c", "source": "ci", "events": [{"nothing": 1}], "expect": {"nope": 1}}]
    rule_file, test_file = write_pack(tmp_path, yaml.safe_dump({"cases": cases}))
    (case,) = load_cases(test_file, rule_file)
    result = run_case(load_rules([rule_file]), case)
    assert not result.passed
    assert any("'nope'" in e for e in result.errors)
    assert any("not normalized" in e for e in result.errors)


def test_run_tests_reports_missing_and_orphan_test_files(tmp_path: Path) -> None:
    """A rule file without a mirrored test file, and a test file without a rule, are load
    errors of the run."""
    rule_file, test_file = write_pack(tmp_path, "cases: []\n")
    test_file.rename(test_file.with_name("github_other.yml"))
    report = run_tests(rule_file.parent.parent, test_file.parent.parent)
    assert not report.passed
    assert "no test file" in report.load_errors[0]
    assert "orphan test file" in report.load_errors[1]
