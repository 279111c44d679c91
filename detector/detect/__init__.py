"""detect layer: Sigma rules loaded through pySigma, compiled to Python, evaluated per event.

Public API: :func:`load_rules` -> :class:`RuleSet`; :class:`DetectionEngine` (``evaluate``
an :class:`~detector.models.Event` -> matches); :func:`alert_for_match`; :func:`explain`;
:func:`getter` (read a Sigma field name from a record; :data:`MISSING` when absent).
Correlations live in :mod:`detector.detect.correlation`.
"""

from detector.detect.alerts import alert_for_match
from detector.detect.engine import DetectionEngine
from detector.detect.explain import Explanation, explain
from detector.detect.fields import MISSING, getter
from detector.detect.loader import load_rules
from detector.detect.ruleset import CompiledRule, RuleSet

__all__ = [
    "MISSING",
    "CompiledRule",
    "DetectionEngine",
    "Explanation",
    "RuleSet",
    "alert_for_match",
    "explain",
    "getter",
    "load_rules",
]
