"""``detector rules test``: find the test cases of a rules tree, run them, report in JUnit.

The case format and the runner are :mod:`detector.app.authoring.cases`; this module
mirrors ``rules/`` and ``tests/`` trees and turns a report into JUnit XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from detector.app.authoring.cases import (
    CaseFormatError,
    CaseResult,
    TestReport,
    load_cases,
    run_case,
    run_tests,
)
from detector.app.rulepack import RuleLoader
from detector.detect import load_rules

_MIRROR = {"rules": "tests", "tests": "rules"}


def mirror(path: Path) -> Path | None:
    """The same place in the mirrored tree: ``x/rules/a/b.yml`` <-> ``x/tests/a/b.yml``.

    The last path component named ``rules`` or ``tests`` is swapped; None if there is none.
    """
    parts = path.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _MIRROR:
            return Path(*parts[:i], _MIRROR[parts[i]], *parts[i + 1 :])
    return None


def case_roots(target: Path, tests: Path | None = None) -> tuple[Path, Path]:
    """(rules path, tests path) for ``detector rules test TARGET [--tests PATH]``.

    ``target`` may be a rules directory or file, or (without ``tests``) a tests directory
    or file; the other side is found by :func:`mirror`. Raise ValueError when it cannot be.
    """
    if tests is not None:
        return target, tests
    other = mirror(target)
    if other is None:
        raise ValueError(
            f"{target}: no 'rules' or 'tests' directory in the path to mirror; "
            "give the test cases with --tests"
        )
    last = next(p for p in reversed(target.parts) if p in _MIRROR)
    return (other, target) if last == "tests" else (target, other)


def run_rule_tests(rules: Path, tests: Path, load: RuleLoader = load_rules) -> TestReport:
    """Run the test cases of ``tests`` against the mirrored rule files under ``rules``.

    A directory runs every case of the tree (see :func:`detector.app.authoring.cases.run_tests`,
    which also reports rule files without tests and orphan test files); a single rule
    file runs the cases of its own test file.
    """
    if rules.is_dir():
        return run_tests(rules, tests, load)
    report = TestReport()
    if not tests.is_file():
        report.load_errors.append(f"{rules}: no test file {tests}")
        return report
    try:
        cases = load_cases(tests, rules, str(tests))
    except CaseFormatError as exc:
        report.load_errors.append(str(exc))
        return report
    ruleset = load([rules])
    report.load_errors.extend(str(e) for e in ruleset.errors)
    report.results.extend(run_case(ruleset, case) for case in cases)
    return report


def junit_xml(report: TestReport, name: str = "detector rules test") -> ET.ElementTree:
    """A JUnit XML document: one testsuite per test file, one testcase per case.

    Failing cases carry a ``failure`` with the expected/actual diff; load errors (rules
    rejected, test files missing or malformed) become ``error`` testcases of a ``load`` suite.
    """
    root = ET.Element("testsuites", name=name)
    suites: dict[str, list[CaseResult]] = {}
    for result in report.results:
        suites.setdefault(result.case.file, []).append(result)
    if report.load_errors:
        suite = ET.SubElement(
            root, "testsuite", name="load", tests=str(len(report.load_errors)), failures="0"
        )
        suite.set("errors", str(len(report.load_errors)))
        for i, problem in enumerate(report.load_errors, start=1):
            case = ET.SubElement(suite, "testcase", classname="load", name=f"load error {i}")
            error = ET.SubElement(case, "error", message=problem.splitlines()[0][:500])
            error.text = problem
    for file, results in suites.items():
        failures = [r for r in results if not r.passed]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(results)),
            failures=str(len(failures)),
            errors="0",
        )
        for result in results:
            case = ET.SubElement(suite, "testcase", classname=file, name=result.case.name)
            if not result.passed:
                lines = result.diff()
                failure = ET.SubElement(case, "failure", message=(lines or ["failed"])[0][:500])
                failure.text = "\n".join(lines)
    total = len(report.results) + len(report.load_errors)
    root.set("tests", str(total))
    root.set("failures", str(len(report.failed)))
    root.set("errors", str(len(report.load_errors)))
    ET.indent(root)
    return ET.ElementTree(root)
