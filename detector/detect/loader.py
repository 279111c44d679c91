"""Loading rules: pySigma parses, validates and applies filters; we compile or reject.

Nothing here raises for a bad rule: every problem becomes a :class:`RuleError` with the
file (and line where it can be found) in :attr:`RuleSet.errors`, and the rule is left
out. A YAML syntax error rejects its whole file; a Sigma error rejects its rule; a
correlation rule whose references are missing or rejected is rejected too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule, SigmaExtendedCorrelationCondition
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaRule, SigmaRuleBase
from sigma.validation import SigmaValidator
from sigma.validators.base import SigmaRuleValidator, SigmaValidationIssue
from sigma.validators.core import validators as core_validators

from detector.detect.compiler import Compiler, Placeholders
from detector.detect.logsources import scope_of
from detector.detect.rulefiles import rule_files
from detector.detect.ruleset import CompiledRule, RuleSet, rule_info
from detector.detect.ruleyaml import NestedTooDeeply, load_rule_documents
from detector.errors import RuleError
from detector.models import RuleInfo

#: pySigma validators whose findings reject a rule (the engine would misbehave).
ERROR_VALIDATORS = ("identifier_existence", "identifier_uniqueness", "dangling_condition")
#: pySigma validators whose findings are reported as warnings only (style, likely mistakes).
#: Left out: the ATT&CK/D3FEND tag checks (they download data), file-name conventions,
#: numbers written as strings (AWS account ids are meant as strings),
#: Windows-specific log source checks and custom-attribute checks.
WARNING_VALIDATORS = (
    "all_of_them_condition",
    "control_character",
    "dangling_detection",
    "double_wildcard",
    "duplicate_references",
    "duplicate_tag",
    "duplicate_title",
    "escaped_wildcard",
    "invalid_modifier_combinations",
    "namespace_tag",
    "tag_format",
    "them_condition_with_single_detection",
    "wildcards_instead_of_modifiers",
)


# Sigma 2.1 names ``utf16le`` (``wide`` is its alias) but pySigma 1.5 only knows ``wide``:
# register the name for the same modifier, for every parse in this process.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)
_FILTER_PREFIX = "_filt_"


#: Rule files larger than this are rejected unread (a SigmaHQ rule is a few KiB).
DEFAULT_MAX_RULE_FILE_BYTES = 1 << 20


def load_rules(
    paths: Sequence[Path | str],
    placeholders: Placeholders | None = None,
    max_file_bytes: int = DEFAULT_MAX_RULE_FILE_BYTES,
) -> RuleSet:
    """Load and compile every rule under ``paths`` (files or directories, recursively).

    ``placeholders`` gives the values of ``expand`` placeholders (``%name%`` -> values);
    a placeholder without values rejects its rule. Files over ``max_file_bytes``, YAML
    nested too deep and correlations on a reference cycle are rejected alone. Never
    raises for rule problems.
    """
    return _Loader(placeholders, max_file_bytes).load(paths)


@dataclass
class _Source:
    """One rule file's text, for locating errors by line."""

    path: Path
    lines: list[str] = field(default_factory=list)

    def line_of(self, rule: SigmaRuleBase | None, message: str = "") -> int | None:
        """Best line for a problem: a quoted token of ``message``, else the rule's id/title."""
        start = self._rule_line(rule) or 1
        for token in re.findall(r"'([^']{2,})'", message):
            for i in range(start - 1, len(self.lines)):
                if token in self.lines[i]:
                    return i + 1
        return start if self.lines else None

    def _rule_line(self, rule: SigmaRuleBase | None) -> int | None:
        if rule is None:
            return None
        for needle in (str(rule.id) if rule.id else None, rule.title or None):
            if needle:
                for i, line in enumerate(self.lines):
                    if needle in line:
                        return i + 1
        return None


class _Loader:
    def __init__(
        self, placeholders: Placeholders | None, max_file_bytes: int = DEFAULT_MAX_RULE_FILE_BYTES
    ) -> None:
        self.max_file_bytes = max_file_bytes
        self.placeholders = {k: tuple(v) for k, v in (placeholders or {}).items()}
        self.compiler = Compiler(self.placeholders)
        self.errors: list[RuleError] = []
        self.warnings: list[RuleError] = []
        self.sources: dict[int, _Source] = {}  # id(rule) -> its file

    # --- reporting -----------------------------------------------------------------

    def _source(self, rule: SigmaRuleBase) -> _Source | None:
        return self.sources.get(id(rule))

    def _problem(self, rule: SigmaRuleBase, message: str) -> RuleError:
        src = self._source(rule)
        label = f"rule {rule.title!r}" + (f" ({rule.id})" if rule.id else "")
        path = str(src.path) if src else None
        line = src.line_of(rule, message) if src else None
        return RuleError(f"{label}: {message}", path, line)

    def reject(self, rule: SigmaRuleBase, message: str) -> None:
        self.errors.append(self._problem(rule, message))

    # --- pipeline ------------------------------------------------------------------

    def load(self, paths: Sequence[Path | str]) -> RuleSet:
        rules: list[SigmaRule] = []
        correlations: list[SigmaCorrelationRule] = []
        filters: list[SigmaFilter] = []
        for path in self._files(paths):
            for item in self._parse_file(path):
                if isinstance(item, SigmaCorrelationRule):
                    correlations.append(item)
                elif isinstance(item, SigmaFilter):
                    filters.append(item)
                elif isinstance(item, SigmaRule):
                    rules.append(item)
        rules, correlations = self._validate(rules, correlations)
        self._apply_filters(filters, rules)
        compiled = self._compile(rules)
        correlations = self._resolve(compiled, correlations)
        return self._result(compiled, correlations)

    def _files(self, paths: Sequence[Path | str]) -> Iterable[Path]:
        return rule_files(paths, self._absent)

    def _absent(self, path: Path) -> None:
        self.errors.append(RuleError("no such rule file or directory", str(path)))

    def _parse_file(self, path: Path) -> list[SigmaRuleBase]:
        try:
            size = path.stat().st_size
            if size > self.max_file_bytes:
                self.errors.append(
                    RuleError(
                        f"rule file of {size} bytes is over the limit of {self.max_file_bytes}"
                        " bytes: split it, or raise the limit if it is meant",
                        str(path),
                    )
                )
                return []
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.errors.append(RuleError(f"cannot read rule file: {exc}", str(path)))
            return []
        source = _Source(path, text.splitlines())
        try:
            documents = load_rule_documents(text)
        except NestedTooDeeply as exc:
            self.errors.append(
                RuleError(f"invalid YAML: nested too deeply for a rule ({exc})", str(path), None)
            )
            return []
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            problem = getattr(exc, "problem", None) or str(exc)
            self.errors.append(RuleError(f"invalid YAML: {problem}", str(path), line))
            return []
        bad = [i for i, d in enumerate(documents) if d is not None and not isinstance(d, dict)]
        if bad:
            self.errors.append(
                RuleError(f"YAML document {bad[0] + 1} is not a mapping", str(path), None)
            )
            return []
        try:
            collection = SigmaCollection.from_dicts(
                documents,
                collect_errors=True,
                source=SigmaRuleLocation(path),
                collect_filters=True,
                resolve_references=False,
            )
        except Exception as exc:  # pySigma raises assorted errors for malformed documents
            self.errors.append(RuleError(f"cannot parse rules: {exc}", str(path)))
            return []
        items: list[SigmaRuleBase] = [*collection.rules, *collection.filters]
        owned = {id(e) for item in items for e in item.errors}
        for err in collection.errors:
            if id(err) not in owned:
                self.errors.append(RuleError(_sigma_message(err), str(path)))
        out: list[SigmaRuleBase] = []
        for item in items:
            self.sources[id(item)] = source
            if item.errors:
                self.reject(item, "; ".join(_sigma_message(e) for e in item.errors))
            else:
                out.append(item)
        return out

    def _validate(
        self, rules: list[SigmaRule], correlations: list[SigmaCorrelationRule]
    ) -> tuple[list[SigmaRule], list[SigmaCorrelationRule]]:
        fatal = _validator(ERROR_VALIDATORS)
        advisory = _validator(WARNING_VALIDATORS)
        everything: list[SigmaRule | SigmaCorrelationRule] = [*rules, *correlations]
        rejected: set[int] = set()
        for issue in _run(fatal, everything):
            for rule in issue.rules:
                rejected.add(id(rule))
                self.reject(rule, _issue_message(issue))
        for issue in _run(advisory, [r for r in everything if id(r) not in rejected]):
            for rule in issue.rules:
                self.warnings.append(self._problem(rule, _issue_message(issue)))
        return (
            [r for r in rules if id(r) not in rejected],
            [c for c in correlations if id(c) not in rejected],
        )

    def _apply_filters(self, filters: list[SigmaFilter], rules: list[SigmaRule]) -> None:
        """Sigma filter documents add their condition to the rules they name (pySigma)."""
        for flt in filters:
            applied = 0
            for rule in rules:
                before = list(rule.detection.condition)
                try:
                    flt.apply_on_rule(rule)
                except SigmaError as exc:
                    self.reject(flt, f"filter cannot be applied to {rule.title!r}: {exc}")
                    break
                applied += rule.detection.condition != before
            if applied == 0:
                self.warnings.append(self._problem(flt, "filter applies to no loaded rule"))

    def _compile(self, rules: list[SigmaRule]) -> list[CompiledRule]:
        compiled: list[CompiledRule] = []
        for rule in rules:
            try:
                scope = scope_of(rule.logsource)
                predicate, requirements = self.compiler.rule(rule)
                selections = tuple(
                    (name, self.compiler.detection(rule, name))
                    for name in rule.detection.detections
                    if not name.startswith(_FILTER_PREFIX)
                )
            except (RuleError, SigmaError) as exc:
                message = exc.args[0] if isinstance(exc, RuleError) else _sigma_message(exc)
                self.reject(rule, str(message))
                continue
            src = self._source(rule)
            compiled.append(
                CompiledRule(
                    info=rule_info(rule),
                    name=rule.name,
                    scope=scope,
                    matches=predicate,
                    selections=selections,
                    requirements=requirements,
                    sigma=rule,
                    path=str(src.path) if src else None,
                    ordinal=len(compiled),
                )
            )
        return compiled

    def _resolve(
        self, compiled: list[CompiledRule], correlations: list[SigmaCorrelationRule]
    ) -> list[SigmaCorrelationRule]:
        """Keep correlations whose references all resolve to loaded rules, transitively,
        and that are not part of a reference cycle (a rule referencing itself included)."""
        base_keys = {r.info.id for r in compiled} | {r.name for r in compiled if r.name}
        accepted = self._acyclic(correlations)
        changed = True
        while changed:
            changed = False
            keys = (
                base_keys
                | {str(c.id) for c in accepted if c.id}
                | {c.name for c in accepted if c.name}
            )
            for corr in list(accepted):
                missing = [ref for ref in _references(corr) if ref not in keys]
                if missing:
                    accepted.remove(corr)
                    self.reject(
                        corr,
                        "correlation references rules that are not loaded (missing or rejected): "
                        + ", ".join(missing),
                    )
                    changed = True
        collection = SigmaCollection(
            [*(r.sigma for r in compiled), *accepted], resolve_references=False
        )
        for corr in accepted:
            corr.resolve_rule_references(collection)
        return accepted

    def _acyclic(self, correlations: list[SigmaCorrelationRule]) -> list[SigmaCorrelationRule]:
        """``correlations`` without those on a reference cycle: each is rejected alone, and
        those that only reference a cycle are rejected next as referencing a missing rule."""
        by_key: dict[str, int] = {}
        for i, corr in enumerate(correlations):
            for key in (str(corr.id) if corr.id else None, corr.name):
                if key:
                    by_key[key] = i
        edges = [
            {by_key[ref] for ref in _references(corr) if ref in by_key} for corr in correlations
        ]
        cyclic = {i for i in range(len(correlations)) if _reaches(edges, i)}
        for i in sorted(cyclic):
            self.reject(
                correlations[i],
                "correlation is part of a reference cycle (it references itself, directly or"
                " through other correlations): break the cycle",
            )
        return [c for i, c in enumerate(correlations) if i not in cyclic]

    def _result(
        self, compiled: list[CompiledRule], correlations: list[SigmaCorrelationRule]
    ) -> RuleSet:
        silent = {
            str(ref.rule.id)
            for corr in correlations
            if not corr.generate
            for ref in corr.referenced_rules
        }
        rules = tuple(replace(r, generates=r.info.id not in silent) for r in compiled)
        infos: dict[str, RuleInfo] = {r.info.id: r.info for r in rules}
        names: dict[str, str] = {r.name: r.info.id for r in rules if r.name}
        for corr in correlations:
            info = rule_info(corr)
            infos[info.id] = info
            if corr.name:
                names[corr.name] = info.id
        return RuleSet(
            rules=rules,
            correlations=tuple(correlations),
            errors=tuple(self.errors),
            warnings=tuple(self.warnings),
            names=names,
            silent=frozenset(silent),
            placeholders=self.placeholders,
            _infos=infos,
        )


def _reaches(edges: list[set[int]], start: int) -> bool:
    """True if following ``edges`` from ``start`` comes back to it (iterative walk)."""
    seen: set[int] = set()
    todo = list(edges[start])
    while todo:
        node = todo.pop()
        if node == start:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(edges[node])
    return False


def _references(corr: SigmaCorrelationRule) -> list[str]:
    if corr.rules is not None:
        return [ref.reference for ref in corr.rules]
    if isinstance(corr.condition, SigmaExtendedCorrelationCondition):
        return list(corr.condition.get_referenced_rules())
    return []


def _validator(names: Sequence[str]) -> SigmaValidator:
    classes: list[type[SigmaRuleValidator]] = [core_validators[n] for n in names]
    return SigmaValidator(classes)


def _run(
    validator: SigmaValidator, rules: list[SigmaRule | SigmaCorrelationRule]
) -> list[SigmaValidationIssue]:
    issues: list[SigmaValidationIssue] = []
    for rule in rules:
        issues.extend(validator.validate_rule(rule))  # type: ignore[arg-type]
    issues.extend(validator.finalize())
    return issues


def _issue_message(issue: SigmaValidationIssue) -> str:
    extra = {k: v for k, v in vars(issue).items() if k not in ("rules", "severity", "description")}
    details = " ".join(f"{k}={v}" for k, v in extra.items())
    return f"{issue.description}" + (f" ({details})" if details else "")


def _sigma_message(err: Any) -> str:
    """A pySigma error without its absolute-path location prefix."""
    message = err.args[0] if getattr(err, "args", None) else str(err)
    return str(message)
