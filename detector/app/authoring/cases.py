"""Rule test cases: run native records through normalize, detect and correlate, compare alerts.

Pure code (no I/O beyond reading the YAML files it is given), shared by the pytest suite,
``detector rules test`` (:mod:`detector.app.authoring.testing`) and the scenario check.
The test-case format is documented in DETECTIONS.md; in short,
``detections/tests/<family>/<name>.yml`` mirrors ``detections/rules/<family>/<name>.yml``
and holds::

    cases:
      - name: what the case shows
        source: cloudtrail          # a source family (see detector.models.FAMILIES) or auto
        events:                     # native records, as they arrive on Kafka
          - {...}
          - repeat: 12              # optional shorthand: 12 copies of ``record`` ...
            every: 20s              # ... each 20 s later than the previous one,
            record: {...}           # ... with "${i}" in strings replaced by 0..11
        expect: 1                   # alerts of the file's own rule; nothing else may fire
        # or: expect: {<rule id, name or title>: count, ...}   (others must not fire)

The file's own rule is its last YAML document (a correlation comes after its base rules).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from detector.app.authoring.rulefiles import yaml_files
from detector.app.rulepack import RuleLoader
from detector.detect import RuleSet, load_rules
from detector.detect.alerting import AlertPipeline
from detector.detect.correlation import rule_key
from detector.errors import NormalizeError
from detector.models import Alert, Event, Origin
from detector.normalize import Normalizer

#: Native time fields the ``repeat``/``every`` shorthand shifts, per record shape.
TIME_FIELDS = ("eventTime", "@timestamp", "created_at", "time", "timestamp", "op_time")
_SPAN = re.compile(r"^(\d+)\s*([smhd])$")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CaseFormatError(ValueError):
    """A test file or case does not follow the documented format."""


def detect_all(ruleset: RuleSet, events: Iterable[Event]) -> list[Alert]:
    """Every alert ``ruleset`` raises over ``events`` (sorted by event time first)."""
    pipeline = AlertPipeline(ruleset)
    alerts: list[Alert] = []
    for event in sorted(events, key=lambda e: e.timestamp):
        alerts.extend(pipeline.process(event))
    alerts.extend(pipeline.flush())
    return alerts


def normalize_all(
    records: Iterable[Any], source: str = "auto", path: str | None = None
) -> tuple[list[Event], list[NormalizeError]]:
    """Normalize native records (or envelopes) with :class:`Normalizer`."""
    normalizer = Normalizer(source)
    events: list[Event] = []
    errors: list[NormalizeError] = []
    for line, record in enumerate(records, start=1):
        got, errs = normalizer.normalize(record, Origin(path=path, line=line))
        events.extend(got)
        errors.extend(errs)
    return events, errors


# --------------------------------------------------------------------------------------
# Test cases.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCase:
    """One case of a test file: native records and the alerts expected from them.

    ``expect`` maps a rule reference (id, name or title) to an alert count; rules not
    listed must raise no alert.
    """

    __test__ = False  # not a pytest class

    file: str
    name: str
    source: str
    records: tuple[Any, ...]
    expect: Mapping[str, int]

    @property
    def label(self) -> str:
        """``file::case name``, for reports and pytest ids."""
        return f"{self.file}::{self.name}"


@dataclass(frozen=True)
class CaseResult:
    """The outcome of one case: expected and actual alert counts per rule, and problems."""

    case: TestCase
    expected: dict[str, int]
    actual: dict[str, int]
    alerts: tuple[Alert, ...] = ()
    errors: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """Whether every count matched and nothing went wrong."""
        return not self.errors and self.expected == self.actual

    def diff(self) -> list[str]:
        """Human-readable lines: per rule ``expected N, got M`` and its alerts' reasons,
        then problems."""
        lines: list[str] = []
        for d in case_diff(self):
            lines.append(f"{d.rule}: expected {d.expected} alert(s), got {d.actual}")
            lines.extend(f"    - {reason}" for reason in d.reasons)
        lines.extend(f"error: {e}" for e in self.errors)
        return lines


@dataclass(frozen=True, slots=True)
class RuleDiff:
    """Expected versus actual alerts of one rule in a failing case."""

    rule: str
    expected: int
    actual: int
    reasons: tuple[str, ...]


def case_diff(result: CaseResult) -> list[RuleDiff]:
    """Per rule whose alert count differs: expected, actual and the actual alerts' reasons."""
    diffs: list[RuleDiff] = []
    for rule in sorted(set(result.expected) | set(result.actual)):
        want, got = result.expected.get(rule, 0), result.actual.get(rule, 0)
        if want != got:
            reasons = tuple(
                a.reason for a in result.alerts if _display(a.rule.title, a.rule.id) == rule
            )
            diffs.append(RuleDiff(rule, want, got, reasons))
    return diffs


@dataclass
class TestReport:
    """Every case result of a run, plus rules that failed to load."""

    __test__ = False

    results: list[CaseResult] = field(default_factory=list)
    load_errors: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Whether the rules loaded and every case passed."""
        return not self.load_errors and all(r.passed for r in self.results)

    @property
    def failed(self) -> list[CaseResult]:
        """The failing cases."""
        return [r for r in self.results if not r.passed]


def _display(title: str, rule_id: str) -> str:
    return f"{title} [{rule_id}]"


def parse_span(text: Any) -> float:
    """``"30s"``/``"5m"``/``"2h"``/``"1d"`` (or a number of seconds) to seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    match = _SPAN.match(str(text).strip())
    if not match:
        raise CaseFormatError(f"invalid time span {text!r}; use e.g. 30s, 5m, 2h, 1d")
    return float(int(match.group(1)) * _SPAN_SECONDS[match.group(2)])


def shift_time(record: Any, seconds: float) -> Any:
    """A copy of ``record`` whose top-level native time fields are ``seconds`` later.

    ISO 8601 strings keep their format (``Z`` suffix included); numbers are epoch
    milliseconds (GitHub ``@timestamp``/``created_at``).
    """
    if not isinstance(record, dict) or not seconds:
        return record
    out = dict(record)
    for name in TIME_FIELDS:
        value = out.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[name] = int(value + seconds * 1000)
        elif isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            shifted = parsed + timedelta(seconds=seconds)
            if parsed.tzinfo is None:
                shifted = shifted.replace(tzinfo=UTC)
            spec = "microseconds" if "." in value else "seconds"
            text = shifted.astimezone(UTC).isoformat(timespec=spec)
            if value.endswith("Z"):
                text = text.replace("+00:00", "Z")
            out[name] = text
    return out


def _substitute(node: Any, index: int) -> Any:
    if isinstance(node, str):
        return node.replace("${i}", str(index))
    if isinstance(node, list):
        return [_substitute(v, index) for v in node]
    if isinstance(node, dict):
        return {k: _substitute(v, index) for k, v in node.items()}
    return node


def expand_events(items: Sequence[Any]) -> list[Any]:
    """The native records of a case, with ``repeat`` items expanded."""
    records: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "repeat" in item and "record" in item:
            count = item["repeat"]
            if not isinstance(count, int) or count < 1:
                raise CaseFormatError("'repeat' must be a positive integer")
            step = parse_span(item.get("every", 0))
            for i in range(count):
                records.append(shift_time(_substitute(copy.deepcopy(item["record"]), i), i * step))
        else:
            records.append(item)
    return records


def primary_rule(rule_file: Path) -> str | None:
    """The id (else name, else title) of the last rule document of ``rule_file``."""
    try:
        documents = [d for d in yaml.safe_load_all(rule_file.read_text(encoding="utf-8")) if d]
    except (OSError, yaml.YAMLError):
        return None
    if not documents or not isinstance(documents[-1], dict):
        return None
    last = documents[-1]
    for key in ("id", "name", "title"):
        if last.get(key):
            return str(last[key])
    return None


def load_cases(
    test_file: Path, rule_file: Path | None = None, label: str | None = None
) -> list[TestCase]:
    """The cases of one test file; ``rule_file`` resolves the integer ``expect`` shorthand."""
    try:
        doc = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CaseFormatError(f"{test_file}: invalid YAML: {exc}") from None
    raw_cases = doc.get("cases") if isinstance(doc, dict) else doc
    if not isinstance(raw_cases, list) or not raw_cases:
        raise CaseFormatError(f"{test_file}: expected a non-empty 'cases' list")
    primary = primary_rule(rule_file) if rule_file is not None else None
    name = label or str(test_file)
    cases: list[TestCase] = []
    for i, raw in enumerate(raw_cases):
        if not isinstance(raw, dict):
            raise CaseFormatError(f"{name}: case {i + 1} is not a mapping")
        case_name = str(raw.get("name") or f"case {i + 1}")
        events = raw.get("events")
        if not isinstance(events, list) or not events:
            raise CaseFormatError(f"{name}::{case_name}: 'events' must be a non-empty list")
        expect = raw.get("expect", {})
        if isinstance(expect, int) and not isinstance(expect, bool):
            if primary is None:
                raise CaseFormatError(f"{name}::{case_name}: integer 'expect' needs the rule file")
            expect = {primary: expect}
        if not isinstance(expect, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in expect.values()
        ):
            raise CaseFormatError(
                f"{name}::{case_name}: 'expect' must be a count or a mapping rule -> count"
            )
        source = str(raw.get("source", "auto"))
        cases.append(
            TestCase(
                file=name,
                name=case_name,
                source=source,
                records=tuple(expand_events(events)),
                expect={str(k): int(v) for k, v in expect.items()},
            )
        )
    return cases


def _resolve_ref(ruleset: RuleSet, ref: str) -> tuple[str, str] | None:
    """(title, id) of the rule ``ref`` names by id, name or title."""
    try:
        info = ruleset.info(ref)
        return info.title, info.id
    except KeyError:
        pass
    for rule in ruleset.rules:
        if rule.info.title == ref:
            return rule.info.title, rule.info.id
    for corr in ruleset.correlations:
        if str(corr.title) == ref:
            return str(corr.title), rule_key(corr)
    return None


def run_case(ruleset: RuleSet, case: TestCase) -> CaseResult:
    """Run one case against ``ruleset`` and compare alert counts."""
    errors: list[str] = []
    expected: dict[str, int] = {}
    for ref, count in case.expect.items():
        resolved = _resolve_ref(ruleset, ref)
        if resolved is None:
            errors.append(f"expect names rule {ref!r}, which is not loaded")
            continue
        if count:
            expected[_display(*resolved)] = count
    try:
        events, norm_errors = normalize_all(case.records, case.source, case.file)
    except ValueError as exc:
        return CaseResult(case, expected, {}, (), (str(exc),))
    errors.extend(f"record not normalized: {e}" for e in norm_errors)
    alerts = detect_all(ruleset, events)
    actual = dict(Counter(_display(a.rule.title, a.rule.id) for a in alerts))
    return CaseResult(case, expected, actual, tuple(alerts), tuple(errors))


def test_file_for(rule_file: Path, rules_dir: Path, tests_dir: Path) -> Path:
    """The mirrored test file of ``rule_file``."""
    return tests_dir / rule_file.relative_to(rules_dir)


def collect_cases(
    rules_dir: Path, tests_dir: Path
) -> tuple[list[tuple[Path, TestCase]], list[str]]:
    """Every (rule file, case) pair of the mirrored trees, and the problems met (a rule
    file without test file, a test file without rule file, a malformed test file)."""
    pairs: list[tuple[Path, TestCase]] = []
    problems: list[str] = []
    for rule_file in yaml_files(rules_dir):
        test_file = test_file_for(rule_file, rules_dir, tests_dir)
        label = str(test_file.relative_to(tests_dir.parent))
        if not test_file.is_file():
            problems.append(f"{rule_file}: no test file {test_file}")
            continue
        try:
            pairs.extend((rule_file, c) for c in load_cases(test_file, rule_file, label))
        except CaseFormatError as exc:
            problems.append(str(exc))
    for test_file in yaml_files(tests_dir):
        if not (rules_dir / test_file.relative_to(tests_dir)).is_file():
            problems.append(f"{test_file}: orphan test file (no rule file at the mirrored path)")
    return pairs, problems


def run_tests(rules_dir: Path, tests_dir: Path, load: RuleLoader = load_rules) -> TestReport:
    """Run every case of ``tests_dir`` against its mirrored rule file of ``rules_dir``.

    Each case sees only its own rule file, so a case says exactly which alerts that file
    produces; a case expecting nothing therefore fails on any alert of the file.
    """
    report = TestReport()
    pairs, problems = collect_cases(rules_dir, tests_dir)
    report.load_errors.extend(problems)
    cache: dict[Path, RuleSet] = {}
    for rule_file, case in pairs:
        ruleset = cache.get(rule_file)
        if ruleset is None:
            ruleset = cache[rule_file] = load([rule_file])
            report.load_errors.extend(str(e) for e in ruleset.errors)
        report.results.append(run_case(ruleset, case))
    return report


__all__ = [
    "CaseFormatError",
    "CaseResult",
    "RuleDiff",
    "TestCase",
    "TestReport",
    "case_diff",
    "collect_cases",
    "detect_all",
    "expand_events",
    "load_cases",
    "normalize_all",
    "parse_span",
    "primary_rule",
    "run_case",
    "run_tests",
    "shift_time",
    "test_file_for",
]
