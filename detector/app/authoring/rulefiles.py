"""Where rules and pipelines live, and what every ``detector rules`` command asks of a rule."""

from __future__ import annotations

from pathlib import Path

from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRuleBase

from detector.detect.correlation import is_first_seen
from detector.detect.rulefiles import RULE_SUFFIXES
from detector.errors import RuleError

DEFAULT_RULES = Path("detections/rules")
DEFAULT_PIPELINES = Path("detections/pipelines")

#: Rule types that are not correlations (``file`` stands for a file that did not parse).
NOT_CORRELATIONS = ("sigma", "first-seen", "file")


def yaml_files(root: Path) -> list[Path]:
    """``root`` itself when it is a file, else every ``.yml``/``.yaml`` file below it, sorted."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())


def rule_type(rule: SigmaRuleBase) -> str:
    """``sigma``, ``first-seen`` or the correlation type (``event_count``, ...)."""
    if isinstance(rule, SigmaCorrelationRule):
        return str(rule.type)
    return "first-seen" if is_first_seen(rule) else "sigma"


def rule_path(rule: SigmaRuleBase) -> str | None:
    """The file pySigma read ``rule`` from, if known."""
    path = getattr(rule.source, "path", None)
    return str(path) if path is not None else None


def error_message(error: RuleError) -> str:
    """The message of ``error`` without the ``path:line:`` prefix RuleError adds."""
    text = str(error)
    for prefix in (f"{error.path}:{error.line}: ", f"{error.path}: "):
        if error.path and text.startswith(prefix):
            return text[len(prefix) :]
    return text
