"""Counters and gauges of the stateful engines, for metrics and logs.

The engines are pure (no I/O): the caller exports these as Prometheus metrics and logs
the deltas (late and too-late events, evictions) with rule context.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Per-rule counters every stateful engine keeps (per partition, summed in stats).
COUNTERS = (
    "late_events",  # event time below the watermark, still counted into open windows
    "too_late_events",  # older than watermark - timespan: every window it could join is closed
    "evictions",  # groups dropped because the rule reached its cap of active groups
    "expired_groups",  # groups whose newest entry left the timespan (normal cleanup)
    "missing_fields",  # matches without a group-by / value field, not counted
    "truncated_entries",  # entries dropped because a group reached its entry cap
    "alerts",  # alerts produced (including ones only fed to chained correlations)
)


@dataclass(frozen=True, slots=True)
class RuleStats:
    """State and counters of one rule, summed over partitions."""

    active_groups: int = 0
    entries: int = 0
    late_events: int = 0
    too_late_events: int = 0
    evictions: int = 0
    expired_groups: int = 0
    missing_fields: int = 0
    truncated_entries: int = 0
    alerts: int = 0


@dataclass(frozen=True, slots=True)
class EngineStats:
    """A point-in-time view: per-rule figures, watermarks per partition, and the most
    recent too-late events as ``(rule id, event id, event time)`` for the caller's log."""

    rules: dict[str, RuleStats] = field(default_factory=dict)
    watermarks: dict[int, float] = field(default_factory=dict)
    too_late_samples: tuple[tuple[str, str, float], ...] = ()

    def total(self, name: str) -> int:
        """The sum of counter or gauge ``name`` over all rules."""
        return sum(int(getattr(r, name)) for r in self.rules.values())

    @property
    def late_events(self) -> int:
        """Late events (below the watermark) still counted into open windows."""
        return self.total("late_events")

    @property
    def too_late_events(self) -> int:
        """Events too old for any open window; not counted, reported here."""
        return self.total("too_late_events")

    @property
    def evictions(self) -> int:
        """Groups evicted because a rule hit its cap."""
        return self.total("evictions")

    @property
    def active_groups(self) -> int:
        """Group keys currently held."""
        return self.total("active_groups")

    @property
    def entries(self) -> int:
        """Entries (timestamps/values) currently held; the state size."""
        return self.total("entries")
