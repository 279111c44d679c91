"""The detection author's workflow behind ``detector rules``: validate, list, test, convert...

Pure-ish functions over rule files (they read the files they are given and nothing else);
the CLI only formats what they return. Validation reports everything the engine would
reject, all at once; conversion runs pySigma's Elasticsearch backends with the project's
processing pipelines (``detections/pipelines/*.yml``), so queries use the ECS field names
of our documents.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sigma.backends.elasticsearch.elasticsearch_eql import EqlBackend
from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
from sigma.collection import SigmaCollection
from sigma.conversion.base import Backend
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import SetStateTransformation
from sigma.rule import SigmaRule, SigmaRuleBase, SigmaRuleTag

from detector.app.ruletest import (
    CaseFormatError,
    CaseResult,
    TestReport,
    load_cases,
    normalize_all,
    primary_rule,
    run_case,
    run_tests,
)
from detector.detect import Explanation, RuleSet, explain, load_rules
from detector.detect.correlation import CorrelationEngine, FirstSeenEngine, is_first_seen
from detector.detect.loader import RULE_SUFFIXES
from detector.errors import RuleError, RuleLoadError
from detector.models import LogSource

DEFAULT_RULES = Path("detections/rules")
DEFAULT_PIPELINES = Path("detections/pipelines")

# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation finding: ``error`` rejects a rule, ``warning`` does not."""

    severity: Severity
    path: str | None
    line: int | None
    message: str

    @property
    def location(self) -> str:
        """``file:line``, ``file`` or ``-``."""
        if self.path and self.line:
            return f"{self.path}:{self.line}"
        return self.path or "-"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "message": self.message,
        }


@dataclass(frozen=True)
class Validation:
    """Outcome of :func:`validate`: counts and every problem, errors first."""

    detections: int
    correlations: int
    problems: tuple[Problem, ...]
    engine_rejected: int = 0

    @property
    def loaded(self) -> int:
        """Rules accepted: loaded by pySigma and the compiler, minus engine rejections."""
        return self.detections + self.correlations - self.engine_rejected

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The findings that reject a rule or file."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """The findings that do not stop a rule."""
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "loaded": self.loaded,
            "detections": self.detections,
            "correlations": self.correlations,
            "rejected": len(self.errors),
            "warnings": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
        }


def _message(error: RuleError) -> str:
    """The message of ``error`` without the ``path:line:`` prefix RuleError adds."""
    text = str(error)
    for prefix in (f"{error.path}:{error.line}: ", f"{error.path}: "):
        if error.path and text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _problem(severity: Severity, error: RuleError) -> Problem:
    return Problem(severity, error.path, error.line, _message(error))


def engine_errors(ruleset: RuleSet) -> list[RuleError]:
    """What the stateful engines reject at start-up (first-seen and correlation specs).

    The loader accepts any correlation pySigma parses; the engines check what they can
    evaluate (group-by fields, thresholds, windows, ``first_seen`` attributes) when built.
    """
    names = dict(ruleset.names)
    errors: list[RuleError] = []
    builders: tuple[Callable[[], object], ...] = (
        lambda: FirstSeenEngine([r.sigma for r in ruleset.rules], rule_ids=names),
        lambda: CorrelationEngine(ruleset.correlations, rule_ids=names),
    )
    for build in builders:
        try:
            build()
        except RuleLoadError as exc:
            errors.extend(exc.errors)
    return errors


def validate(paths: Sequence[Path | str]) -> Validation:
    """Load ``paths`` as the engine would and collect every error and warning, sorted."""
    ruleset = load_rules(paths)
    errors = [*ruleset.errors, *engine_errors(ruleset)]
    problems = [_problem("error", e) for e in errors]
    problems += [_problem("warning", w) for w in ruleset.warnings]
    problems.sort(key=lambda p: (p.severity != "error", p.path or "", p.line or 0, p.message))
    return Validation(
        detections=len(ruleset.rules),
        correlations=len(ruleset.correlations),
        problems=tuple(problems),
        engine_rejected=len(errors) - len(ruleset.errors),
    )


# --------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------


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
        return {
            "id": self.id,
            "title": self.title,
            "level": self.level,
            "logsource": self.logsource,
            "tags": list(self.tags),
            "type": self.type,
            "path": self.path,
        }


def _location(rule: SigmaRuleBase) -> str | None:
    path = getattr(rule.source, "path", None)
    return str(path) if path is not None else None


def rule_rows(ruleset: RuleSet) -> list[RuleRow]:
    """Rows for every loaded rule: detections (``sigma`` or ``first-seen``), then correlations.

    A correlation's log source is the list of rules it references.
    """
    rows: list[RuleRow] = []
    for rule in ruleset.rules:
        rows.append(
            RuleRow(
                id=rule.info.id,
                title=rule.info.title,
                level=rule.info.level,
                logsource=rule.scope.describe(),
                tags=rule.info.tags,
                type="first-seen" if is_first_seen(rule.sigma) else "sigma",
                path=rule.path,
            )
        )
    for corr in ruleset.correlations:
        info = ruleset.info(str(corr.id) if corr.id else str(corr.name or corr.title))
        refs = ", ".join(ref.reference for ref in corr.rules or ())
        rows.append(
            RuleRow(
                id=info.id,
                title=info.title,
                level=info.level,
                logsource=f"rules: {refs}" if refs else "-",
                tags=info.tags,
                type=str(corr.type),
                path=_location(corr),
            )
        )
    return rows


# --------------------------------------------------------------------------------------
# Test cases
# --------------------------------------------------------------------------------------

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


def _yaml_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


def run_rule_tests(rules: Path, tests: Path) -> TestReport:
    """Run the test cases of ``tests`` against the mirrored rule files under ``rules``.

    A directory runs every case of the tree (see :func:`detector.app.ruletest.run_tests`),
    plus a load error per orphan test file (a test without its rule file); a single rule
    file runs the cases of its own test file.
    """
    if rules.is_dir():
        report = run_tests(rules, tests)
        if tests.is_dir():
            for test_file in _yaml_files(tests):
                rule_file = rules / test_file.relative_to(tests)
                if not rule_file.is_file():
                    report.load_errors.append(f"{test_file}: orphan test, no rule file {rule_file}")
        return report
    report = TestReport()
    if not tests.is_file():
        report.load_errors.append(f"{rules}: no test file {tests}")
        return report
    try:
        cases = load_cases(tests, rules, str(tests))
    except CaseFormatError as exc:
        report.load_errors.append(str(exc))
        return report
    ruleset = load_rules([rules])
    report.load_errors.extend(str(e) for e in ruleset.errors)
    report.results.extend(run_case(ruleset, case) for case in cases)
    return report


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
                a.reason for a in result.alerts if f"{a.rule.title} [{a.rule.id}]" == rule
            )
            diffs.append(RuleDiff(rule, want, got, reasons))
    return diffs


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


# --------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------

Target = Literal["lucene", "esql", "eql", "kibana"]
#: ``--target`` -> (backend class, pySigma output format).
TARGETS: dict[str, tuple[type[Backend], str]] = {
    "lucene": (LuceneBackend, "default"),
    "esql": (ESQLBackend, "default"),
    "eql": (EqlBackend, "default"),
    "kibana": (LuceneBackend, "siem_rule_ndjson"),
}

#: MITRE ATT&CK enterprise tactics by Sigma tag name (for Kibana's ``threat`` field).
ATTACK_TACTICS = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource-development": ("TA0042", "Resource Development"),
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command-and-control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
}
#: Kibana accepts only these severities (Sigma also has ``informational``).
KIBANA_SEVERITIES = ("low", "medium", "high", "critical")


def attack_threat(tags: Iterable[SigmaRuleTag], names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Kibana ``threat`` entries from ``attack.*`` tags, without network access.

    pySigma's own mapping downloads ATT&CK data; here tactic ids come from a fixed
    table and technique names from ``names`` (technique id -> name), else the id.
    Every technique of the rule is listed under each of its tactics.
    """
    tactics: list[str] = []
    techniques: list[str] = []
    for tag in tags:
        if tag.namespace != "attack":
            continue
        name = tag.name.lower().replace("_", "-")
        if name in ATTACK_TACTICS:
            tactics.append(name)
        elif name[:1] == "t" and name[1:5].isdigit():
            techniques.append(name.upper())
    threat: list[dict[str, Any]] = []
    for tactic in tactics:
        tactic_id, tactic_name = ATTACK_TACTICS[tactic]
        entries: dict[str, dict[str, Any]] = {}
        for technique in techniques:
            parent = technique.split(".")[0]
            entry = entries.setdefault(
                parent,
                {
                    "id": parent,
                    "name": names.get(parent, parent),
                    "reference": f"https://attack.mitre.org/techniques/{parent}/",
                    "subtechnique": [],
                },
            )
            if "." in technique:
                entry["subtechnique"].append(
                    {
                        "id": technique,
                        "name": names.get(technique, technique),
                        "reference": "https://attack.mitre.org/techniques/"
                        + technique.replace(".", "/")
                        + "/",
                    }
                )
        threat.append(
            {
                "framework": "MITRE ATT&CK",
                "tactic": {
                    "id": tactic_id,
                    "name": tactic_name,
                    "reference": f"https://attack.mitre.org/tactics/{tactic_id}/",
                },
                "technique": list(entries.values()),
            }
        )
    return threat


class KibanaRuleBackend(LuceneBackend):
    """pySigma's Lucene backend with an offline ATT&CK mapping for ``siem_rule_ndjson``.

    The stock mapping fetches ATT&CK data from the network (and removes the rule's tags
    while doing so); conversion must work offline and leave rules untouched.
    """

    attack_names: Mapping[str, str] = {}

    def finalize_output_threat_model(self, tags: list[SigmaRuleTag]) -> Iterable[dict[str, Any]]:
        """Kibana ``threat`` entries for the rule's ``attack.*`` tags."""
        return attack_threat(tags, self.attack_names)


class KibanaEsqlRuleBackend(ESQLBackend):
    """pySigma's ES|QL backend with the offline ATT&CK mapping: Kibana ES|QL rules,
    used for the correlations the Lucene backend cannot express."""

    attack_names: Mapping[str, str] = {}

    def finalize_output_threat_model(self, tags: list[SigmaRuleTag]) -> Iterable[dict[str, Any]]:
        """Kibana ``threat`` entries for the rule's ``attack.*`` tags."""
        return attack_threat(tags, self.attack_names)


@dataclass(frozen=True, slots=True)
class Converted:
    """One rule's queries (text for lucene/esql/eql, Kibana rule objects for kibana)."""

    id: str
    title: str
    type: str
    path: str | None
    queries: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Skipped:
    """A rule that produced no query, and why."""

    id: str
    title: str
    type: str
    path: str | None
    reason: str
    error: bool  # True: a problem; False: expected (unsupported correlation, building block)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "title": self.title,
            "type": self.type,
            "path": self.path,
            "reason": self.reason,
        }


_NOT_CORRELATIONS = ("sigma", "first-seen", "file")


@dataclass
class Conversion:
    """Everything one ``convert`` produced."""

    target: str
    converted: list[Converted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    pipelines: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Skipped]:
        """Rules or files that could not be converted because of a problem."""
        return [s for s in self.skipped if s.error]

    @property
    def skipped_correlations(self) -> list[Skipped]:
        """Correlation rules the backend cannot express."""
        return [s for s in self.skipped if not s.error and s.type not in _NOT_CORRELATIONS]

    def render(self, fmt: Literal["text", "json"] = "text") -> str:
        """The output file's text.

        ``kibana``: NDJSON, one Kibana Security detection rule per line (importable with
        Kibana's rule import). Other targets: ``text`` gives each rule's queries under a
        ``# title (id)`` header; ``json`` a list of ``{id, title, type, path, queries}``.
        """
        if self.target == "kibana":
            return "".join(
                json.dumps(q, sort_keys=True, default=str) + "\n"
                for c in self.converted
                for q in c.queries
            )
        if fmt == "json":
            items = [
                {
                    "id": c.id,
                    "title": c.title,
                    "type": c.type,
                    "path": c.path,
                    "queries": list(c.queries),
                }
                for c in self.converted
            ]
            return json.dumps(items, indent=2, default=str) + "\n"
        blocks = [
            f"# {c.title} ({c.id})\n" + "\n".join(str(q) for q in c.queries) + "\n"
            for c in self.converted
        ]
        return "\n".join(blocks)


def pipeline_files(paths: Sequence[Path]) -> list[Path]:
    """The YAML pipeline files named by ``paths`` (files, or directories of ``*.yml``)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(_yaml_files(path))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such pipeline file or directory")
    return files


def load_pipeline(paths: Sequence[Path]) -> ProcessingPipeline:
    """One pySigma processing pipeline from YAML pipeline files (what ``sigma convert -p``
    reads); their transformations keep their own ``rule_conditions`` (e.g. per log source).

    Raise ValueError naming the file for an invalid pipeline.
    """
    pipeline = ProcessingPipeline()
    for path in pipeline_files(paths):
        try:
            pipeline = pipeline + ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, SigmaError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid processing pipeline: {exc}") from None
    return pipeline


def field_mapping(
    logsource: LogSource, paths: Sequence[Path] = (DEFAULT_PIPELINES,)
) -> dict[str, str]:
    """Native field name -> ECS field name that the pipelines apply to ``logsource`` rules."""
    mapping: dict[str, str] = {}
    for path in pipeline_files(paths):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in document.get("transformations", []):
            if item.get("type") == "field_name_mapping" and _applies(item, logsource):
                for native, ecs in item.get("mapping", {}).items():
                    if isinstance(ecs, str):
                        mapping[str(native)] = ecs
    return mapping


def _applies(item: dict[str, Any], logsource: LogSource) -> bool:
    return any(
        cond.get("type") == "logsource"
        and cond.get("product") == logsource.product
        and cond.get("service") in (None, logsource.service)
        for cond in item.get("rule_conditions", [])
    )


def _kind(rule: SigmaRuleBase) -> str:
    if isinstance(rule, SigmaCorrelationRule):
        return str(rule.type)
    return "first-seen" if is_first_seen(rule) else "sigma"


def _id(rule: SigmaRuleBase) -> str:
    if rule.id is not None:
        return str(rule.id)
    return str(getattr(rule, "name", None) or rule.title)


def _parse(paths: Sequence[Path | str], conversion: Conversion) -> SigmaCollection:
    """Every rule of ``paths`` parsed by pySigma; unparsable files and rules are recorded."""
    collections: list[SigmaCollection] = []
    for raw in paths:
        root = Path(raw)
        if not root.exists():
            conversion.skipped.append(
                Skipped("", "", "file", str(root), "no such rule file or directory", True)
            )
            continue
        for path in _yaml_files(root):
            try:
                collection = SigmaCollection.from_yaml(
                    path.read_text(encoding="utf-8"),
                    collect_errors=True,
                    source=SigmaRuleLocation(path),
                )
            except (OSError, UnicodeDecodeError, yaml.YAMLError, SigmaError) as exc:
                conversion.skipped.append(
                    Skipped("", "", "file", str(path), f"cannot parse: {exc}", True)
                )
                continue
            good: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
            for rule in collection.rules:
                if rule.errors:
                    reason = "; ".join(str(e) for e in rule.errors)
                    conversion.skipped.append(
                        Skipped(_id(rule), rule.title, _kind(rule), str(path), reason, True)
                    )
                else:
                    good.append(rule)
            collections.append(SigmaCollection(good, resolve_references=False))
    merged = SigmaCollection.merge(collections) if collections else SigmaCollection([])
    try:
        merged.resolve_rule_references()
    except SigmaError as exc:
        conversion.skipped.append(Skipped("", "", "file", None, str(exc), True))
        merged = SigmaCollection(
            [r for r in merged.rules if not isinstance(r, SigmaCorrelationRule)],
            resolve_references=False,
        )
    return merged


def _kibana_fixups(query: Any) -> Any:
    """Kibana refuses Sigma's ``informational`` severity."""
    if isinstance(query, dict) and query.get("severity") not in KIBANA_SEVERITIES:
        query["severity"] = "low"
    return query


#: Outcome of converting one rule: its queries, or (reason, is it a problem).
_Outcome = list[Any] | tuple[str, bool]
_BUILDING_BLOCK = "building block of a correlation with generate: false (no query of its own)"


def _backend(
    backend_class: type[Backend],
    pipeline: ProcessingPipeline | None,
    output_format: str,
    index_names: Sequence[str],
    attack_names: Mapping[str, str] | None,
) -> Backend:
    full = pipeline if pipeline is not None else ProcessingPipeline()
    options: dict[str, Any] = {}
    if index_names and issubclass(backend_class, ESQLBackend):
        # ES|QL reads its ``from`` indices from the pipeline state.
        state = ProcessingItem(SetStateTransformation("index", list(index_names)))
        full = full + ProcessingPipeline([state], name="index names")
    elif index_names:
        options["index_names"] = list(index_names)
    backend = backend_class(full, collect_errors=True, **options)
    if isinstance(backend, KibanaRuleBackend | KibanaEsqlRuleBackend):
        backend.attack_names = dict(attack_names or {})
    backend.init_processing_pipeline(output_format)
    return backend


def _convert_each(
    collection: SigmaCollection, backend: Backend, output_format: str
) -> list[tuple[SigmaRuleBase, _Outcome]]:
    """Every rule of ``collection`` in order (references before correlations)."""
    outcomes: list[tuple[SigmaRuleBase, _Outcome]] = []
    for rule in collection.rules:
        before = len(backend.errors)
        outcome: _Outcome
        try:
            if isinstance(rule, SigmaCorrelationRule):
                outcome = list(backend.convert_correlation_rule(rule, output_format))
            else:
                outcome = list(backend.convert_rule(rule, output_format))
        except NotImplementedError as exc:
            outcome = (str(exc) or "not supported by the backend", False)
        except SigmaError as exc:
            outcome = (str(exc), True)
        if len(backend.errors) > before:
            outcome = ("; ".join(str(e) for _, e in backend.errors[before:]), True)
        elif not outcome:
            outcome = (_BUILDING_BLOCK, False)
        outcomes.append((rule, outcome))
    return outcomes


def convert(
    paths: Sequence[Path | str],
    target: str,
    pipeline: ProcessingPipeline | None = None,
    *,
    index_names: Sequence[str] = (),
    attack_names: Mapping[str, str] | None = None,
) -> Conversion:
    """Convert every rule under ``paths`` with pySigma's Elasticsearch backend for ``target``.

    ``pipeline`` maps native fields to ECS (see :func:`load_pipeline`); ``index_names``
    sets the indices the queries search. Correlation rules convert where the backend
    supports them, else they are skipped with the backend's reason; for ``kibana`` the
    correlations Lucene cannot express become Kibana ES|QL rules where ES|QL can. Rules
    only used by ``generate: false`` correlations have no query of their own. Never
    raises for rule problems.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    backend_class, output_format = TARGETS[target]
    if target == "kibana":
        backend_class = KibanaRuleBackend
    conversion = Conversion(target)
    collection = _parse(paths, conversion)
    backend = _backend(backend_class, pipeline, output_format, index_names, attack_names)
    outcomes = _convert_each(collection, backend, output_format)
    if target == "kibana" and any(
        isinstance(r, SigmaCorrelationRule) and isinstance(o, tuple) and not o[1]
        for r, o in outcomes
    ):
        # Pipelines change rules in place: the second backend needs a fresh parse.
        esql = _backend(KibanaEsqlRuleBackend, pipeline, output_format, index_names, attack_names)
        again = _convert_each(_parse(paths, Conversion(target)), esql, output_format)
        by_id = {_id(r): o for r, o in again if isinstance(r, SigmaCorrelationRule)}
        outcomes = [
            (r, by_id.get(_id(r), o))
            if isinstance(r, SigmaCorrelationRule) and isinstance(o, tuple) and not o[1]
            else (r, o)
            for r, o in outcomes
        ]
    for rule, outcome in outcomes:
        kind, rid, path = _kind(rule), _id(rule), _location(rule)
        if isinstance(outcome, tuple):
            reason, problem = outcome
            conversion.skipped.append(Skipped(rid, rule.title, kind, path, reason, problem))
            continue
        queries = [_kibana_fixups(q) for q in outcome] if target == "kibana" else outcome
        conversion.converted.append(Converted(rid, rule.title, kind, path, tuple(queries)))
    return conversion


def attack_technique_names(stix_file: Path) -> dict[str, str]:
    """Technique id -> name from a MITRE ATT&CK STIX bundle (enterprise-attack.json)."""
    data = json.loads(stix_file.read_text(encoding="utf-8"))
    names: dict[str, str] = {}
    for obj in data.get("objects", []):
        if obj.get("type") != "attack-pattern":
            continue
        for ref in obj.get("external_references", []):
            if ref.get("source_name") == "mitre-attack" and ref.get("external_id"):
                names[str(ref["external_id"])] = str(obj.get("name", ref["external_id"]))
    return names


# --------------------------------------------------------------------------------------
# Explanations
# --------------------------------------------------------------------------------------


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


def resolve_rule(ref: str, rules: Sequence[Path | str]) -> tuple[RuleSet, str]:
    """(rules loaded, key of the rule) for ``ref``: a rule file path, id, name or title.

    A path loads that file alone (its last document is the rule, as in test files);
    anything else is looked up among the rules under ``rules``. Raise LookupError
    (with the rejection reasons if the rule was rejected).
    """
    path = Path(ref)
    if path.suffix in RULE_SUFFIXES and path.is_file():
        ruleset = load_rules([path])
        key = primary_rule(path)
        if key is None:
            raise LookupError(f"{path}: no rule document found")
    else:
        ruleset = load_rules(rules)
        key = ref
    try:
        info = ruleset.info(key)
        return ruleset, info.id
    except KeyError:
        pass
    for row in rule_rows(ruleset):
        if row.title == key:
            return ruleset, row.id
    rejected = [_message(e) for e in ruleset.errors if key in str(e)]
    detail = ("; rejected: " + " | ".join(rejected)) if rejected else ""
    raise LookupError(f"no loaded rule with id, name or title {key!r}{detail}")


def _detections_of(ruleset: RuleSet, key: str) -> tuple[str, list[str]]:
    """(type, ids of the detection rules to explain) for rule ``key``, recursively."""
    for rule in ruleset.rules:
        if rule.info.id == key:
            return ("first-seen" if is_first_seen(rule.sigma) else "sigma"), [key]
    for corr in ruleset.correlations:
        if _id(corr) == key:
            ids: list[str] = []
            for ref in corr.rules or ():
                target = ruleset.names.get(ref.reference, ref.reference)
                ids.extend(i for i in _detections_of(ruleset, target)[1] if i not in ids)
            return str(corr.type), ids
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


__all__ = [
    "ATTACK_TACTICS",
    "DEFAULT_PIPELINES",
    "DEFAULT_RULES",
    "TARGETS",
    "Conversion",
    "Converted",
    "KibanaEsqlRuleBackend",
    "KibanaRuleBackend",
    "Problem",
    "RuleDiff",
    "RuleExplanation",
    "RuleRow",
    "Skipped",
    "Validation",
    "attack_technique_names",
    "attack_threat",
    "case_diff",
    "case_roots",
    "convert",
    "engine_errors",
    "explain_record",
    "field_mapping",
    "junit_xml",
    "load_pipeline",
    "mirror",
    "pipeline_files",
    "resolve_rule",
    "rule_rows",
    "run_rule_tests",
    "validate",
]
