"""Stateful detection on event time: Sigma correlations and first-seen (new term) rules.

See docs/correlation.md for semantics, the late-event policy and the first-seen extension.
"""

from detector.detect.correlation.engine import CorrelationEngine
from detector.detect.correlation.firstseen import (
    FirstSeenEngine,
    FirstSeenSpec,
    first_seen_spec,
    is_first_seen,
    suppressed_rule_ids,
)
from detector.detect.correlation.spec import CorrelationSpec, compile_correlation, rule_key
from detector.detect.correlation.stats import EngineStats, RuleStats

__all__ = [
    "CorrelationEngine",
    "CorrelationSpec",
    "EngineStats",
    "FirstSeenEngine",
    "FirstSeenSpec",
    "RuleStats",
    "compile_correlation",
    "first_seen_spec",
    "is_first_seen",
    "rule_key",
    "suppressed_rule_ids",
]
