"""The rule policy of a process: exceptions and ``rules.*`` settings applied at start-up.

``detector run``, ``detector replay`` and ``detector rules list`` call
:func:`effective_rules`, so every entry point runs the same rules with the same
exceptions. Problems in exception files stop start-up (exit 2, all listed). Expired
exceptions and policy entries naming no loaded rule are *warnings*: an expired exception
only stops silencing (more alerts, never fewer), so it must not take detection down when
a process restarts after the date; the warning tells the owner to renew or delete it.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import structlog
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from detector.app.metrics import REGISTRY
from detector.app.rulepack import rule_placeholders
from detector.app.settings import RulesConfig
from detector.app.sigmahq import SIGMAHQ_DISABLED
from detector.detect import RuleSet
from detector.detect.exceptions import ExceptionSet, RuleException, load_exceptions, unknown_rules
from detector.detect.policy import (
    EffectivePolicy,
    RulePolicy,
    apply_policy,
    known_rules,
    unknown_references,
    with_suppression,
)
from detector.detect.suppression import SuppressionDefaults, suppression_errors
from detector.errors import ConfigError, RuleError, RuleLoadError

log = structlog.get_logger(__name__)


def rule_policy(config: RulesConfig) -> RulePolicy:
    """The :class:`RulePolicy` of the ``rules`` settings section."""
    return RulePolicy(
        disabled=tuple(config.disabled),
        min_level=config.min_level,
        statuses=tuple(config.statuses) if config.statuses is not None else None,
        level_overrides=dict(config.level_overrides),
    )


def suppression_defaults(config: RulesConfig) -> SuppressionDefaults:
    """The :class:`SuppressionDefaults` of the ``rules.suppression`` settings."""
    section = config.suppression
    return SuppressionDefaults(
        enabled=section.enabled,
        group_by=tuple(section.group_by),
        window_seconds=section.window_seconds,
    )


def read_exceptions(
    paths: Sequence[Path], config: RulesConfig | None = None
) -> list[RuleException]:
    """Compiled exceptions of ``paths``; :class:`ConfigError` listing every bad entry."""
    loaded = load_exceptions(paths, rule_placeholders(config) if config else None)
    if loaded.errors:
        problems = "\n".join(f"  - {e}" for e in loaded.errors)
        raise ConfigError(
            f"invalid exception file(s) ({len(loaded.errors)} problem(s)); fix them or "
            f"remove them from rules.exceptions:\n{problems}"
        )
    return loaded.exceptions


def policy_warnings(
    ruleset: RuleSet, policy: RulePolicy, exceptions: Iterable[RuleException], now: float
) -> list[RuleError]:
    """Expired exceptions and policy or exception entries that name no loaded rule."""
    exceptions = list(exceptions)
    problems = [
        RuleError(
            f"exception {e.id!r} expired on {_day(e.expires)}; it no longer silences "
            "anything: renew 'expires' or delete it",
            e.path,
        )
        for e in exceptions
        if e.expires is not None and e.expired(now)
    ]
    problems += unknown_rules(exceptions, known_rules(ruleset))
    problems += [
        RuleError(f"rules.disabled or rules.level_overrides names {ref!r}, which is not loaded")
        for ref in unknown_references(ruleset, policy)
        if ref not in SIGMAHQ_DISABLED  # the shipped tuning of a pack that is not loaded
    ]
    return problems


def exception_findings(
    paths: Sequence[Path], ruleset: RuleSet, *, now: float | None = None
) -> tuple[list[RuleError], list[RuleError]]:
    """Errors (malformed entries) and warnings (expired, unknown rules) of exception files."""
    loaded = load_exceptions(paths, ruleset.placeholders)
    warnings = policy_warnings(
        ruleset, RulePolicy(), loaded.exceptions, time.time() if now is None else now
    )
    return loaded.errors, warnings


def effective_rules(
    config: RulesConfig, ruleset: RuleSet, *, now: float | None = None
) -> tuple[EffectivePolicy, list[RuleError]]:
    """Apply the ``rules`` settings and exception files to ``ruleset``, with the warnings
    (see :func:`policy_warnings`) for the caller to report.

    The exceptions' drop counts are exported as ``detector_exception_drops_total``. A
    malformed ``suppression`` attribute of a rule raises :class:`RuleLoadError`.
    """
    policy = rule_policy(config)
    exceptions = read_exceptions(config.exceptions, config)
    # The shipped default of ``disabled`` names rules of the bundled packs, which a
    # deployment may not load: only a list the user gave is checked for typos.
    named = policy if "disabled" in config.model_fields_set else replace(policy, disabled=())
    warnings = policy_warnings(ruleset, named, exceptions, time.time() if now is None else now)
    defaults = suppression_defaults(config)
    problems = suppression_errors(
        [*(r.sigma for r in ruleset.rules), *ruleset.correlations], defaults
    )
    if problems:
        raise RuleLoadError(problems)
    effective = with_suppression(apply_policy(ruleset, policy, exceptions), defaults)
    _DROPS.track(effective.ruleset.exceptions)
    return effective, warnings


def log_policy(effective: EffectivePolicy, warnings: Iterable[RuleError]) -> None:
    """Start-up log lines: one warning per problem, one summary of the rules' states."""
    for problem in warnings:
        log.warning("rule_policy_warning", problem=str(problem))
    states = Counter(s.state for s in effective.states)
    log.info(
        "rule_policy_applied",
        exceptions=len(effective.ruleset.exceptions.exceptions),
        enabled=states["enabled"],
        building_blocks=states["building block"],
        disabled=states["disabled"],
    )


def _day(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch or 0, UTC).isoformat().replace("+00:00", "Z")


class _DropCollector(Collector):
    """``detector_exception_drops_total{exception, rule_id}``: matches silenced by exceptions.

    Reads the counts of the live exception sets at scrape time (the detect layer keeps
    plain counters and never imports the metrics client).
    """

    def __init__(self) -> None:
        self._sets: weakref.WeakSet[ExceptionSet] = weakref.WeakSet()

    def track(self, exceptions: ExceptionSet) -> None:
        """Export the drop counts of ``exceptions`` from now on."""
        if exceptions:
            self._sets.add(exceptions)

    def collect(self) -> Iterable[CounterMetricFamily]:
        """The current totals, summed over every tracked set."""
        family = CounterMetricFamily(
            "detector_exception_drops",
            "Rule matches dropped by an exception, per exception and rule.",
            labels=["exception", "rule_id"],
        )
        totals: Counter[tuple[str, str]] = Counter()
        for exceptions in list(self._sets):
            totals.update(exceptions.dropped)
        for (exception, rule_id), count in sorted(totals.items()):
            family.add_metric([exception, rule_id], count)
        yield family


_DROPS = _DropCollector()
REGISTRY.register(_DROPS)
