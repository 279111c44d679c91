"""``detector rules validate``: everything pySigma and the engines reject, all at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from detector.app.authoring.rulefiles import error_message
from detector.app.policy import exception_findings
from detector.app.rulepack import RuleLoader
from detector.detect import RuleSet, load_rules
from detector.detect.correlation import CorrelationEngine, FirstSeenEngine
from detector.detect.suppression import suppression_errors
from detector.errors import RuleError, RuleLoadError

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
        return asdict(self)


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


def _problem(severity: Severity, error: RuleError) -> Problem:
    return Problem(severity, error.path, error.line, error_message(error))


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
    errors += suppression_errors([*(r.sigma for r in ruleset.rules), *ruleset.correlations])
    return errors


def validate(
    paths: Sequence[Path | str], exceptions: Sequence[Path] = (), load: RuleLoader = load_rules
) -> Validation:
    """Load ``paths`` as the engine would and collect every error and warning, sorted.

    ``exceptions`` files are checked against the rules too: malformed entries are errors,
    expired ones and references to rules not loaded are warnings. ``load`` loads the rules
    (:func:`detector.app.rulepack.rule_loader` fills placeholders); rules it left out on
    purpose are warnings.
    """
    ruleset = load(paths)
    errors = [*ruleset.errors, *engine_errors(ruleset)]
    problems = [_problem("error", e) for e in errors]
    problems += [_problem("warning", w) for w in (*ruleset.warnings, *ruleset.disabled)]
    if exceptions:
        bad, stale = exception_findings(exceptions, ruleset)
        problems += [_problem("error", e) for e in bad]
        problems += [_problem("warning", w) for w in stale]
    problems.sort(key=lambda p: (p.severity != "error", p.path or "", p.line or 0, p.message))
    return Validation(
        detections=len(ruleset.rules),
        correlations=len(ruleset.correlations),
        problems=tuple(problems),
        engine_rejected=len(errors) - len(ruleset.errors),
    )
