"""Which alerts reach a human, and how often: severity/tag routes, suppression, rate caps.

All time here is the wall clock of the process (``time.time`` by default), not the event
time of the alert: suppression and caps protect the people being notified, so they are
about when a notification would arrive, whatever the age of the evidence (a replay of
last week's logs must not page fifty times either).
"""

from __future__ import annotations

import fnmatch
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from detector.models import Alert
from detector.models.alerts import LEVELS, field_value, level_rank

#: Sigma level -> PagerDuty Events API v2 ``payload.severity``.
PAGERDUTY_SEVERITY = {
    "informational": "info",
    "low": "info",
    "medium": "warning",
    "high": "error",
    "critical": "critical",
}

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Route:
    """A sink's filter: minimum Sigma level and tag patterns (``fnmatch``, case-insensitive).

    An alert passes when its level is at least ``min_level``, at least one of its rule's
    tags matches an ``include`` pattern (if any are given), and none matches an
    ``exclude`` pattern (exclusion wins).
    """

    min_level: str = "informational"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def accepts(self, alert: Alert) -> bool:
        """Whether ``alert`` should be notified through this route."""
        if level_rank(alert.rule.level) < level_rank(self.min_level):
            return False
        tags = [t.lower() for t in alert.rule.tags]
        if any(_matches(tags, p) for p in self.exclude):
            return False
        return not self.include or any(_matches(tags, p) for p in self.include)


def _matches(tags: Iterable[str], pattern: str) -> bool:
    pattern = pattern.lower()
    return any(fnmatch.fnmatchcase(tag, pattern) for tag in tags)


class SuppressionKey(NamedTuple):
    """What "the same incident" means: one rule and one group key or actor."""

    rule_id: str
    #: ``field=value`` pairs joined by ``, ``; empty when the alert names no actor.
    key: str


def suppression_key(alert: Alert, fields: Sequence[str]) -> SuppressionKey:
    """The key of ``alert``: its correlation group, else ``fields`` of its first event.

    With neither, the key is the rule alone (every alert of the rule is one incident).
    """
    if alert.group:
        pairs = sorted(alert.group.items())
    else:
        first = alert.events[0] if alert.events else {}
        pairs = [(f, v) for f in fields if (v := lookup(first, f)) is not None]
    return SuppressionKey(alert.rule.id, ", ".join(f"{k}={v}" for k, v in pairs))


def lookup(doc: Mapping[str, Any], dotted: str) -> str | None:
    """The scalar at ``dotted`` in a nested (or flat-keyed) ECS document, as text."""
    value = field_value(doc, dotted)
    if isinstance(value, str | int | float | bool):
        return str(value)
    return None


@dataclass(slots=True)
class Window:
    """Suppression state of one key."""

    #: When the last notification for the key went out (clock seconds).
    opened_at: float
    #: The rule title, for summaries.
    title: str
    #: Alerts not notified since ``opened_at``.
    suppressed: int = 0


class Suppressor:
    """One notification per key per window; later alerts in the window are only counted.

    The protocol is two-phase so that a failed delivery leaves no trace:
    :meth:`admit` says whether to send (and how many suppressed alerts to mention),
    :meth:`opened` records a delivery, :meth:`count` a suppressed alert. Windows whose
    count was never mentioned because no later alert came are returned by :meth:`due`
    and forgotten with :meth:`forget` once summarized. At most ``max_keys`` keys are
    remembered (least recently notified are dropped first).
    """

    def __init__(self, window_seconds: float, *, max_keys: int = 10_000, clock: Clock = time.time):
        self.window_seconds = window_seconds
        self._max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[SuppressionKey, Window] = OrderedDict()

    def admit(self, key: SuppressionKey) -> int | None:
        """``None`` if a notification for ``key`` went out less than a window ago;
        otherwise the number of alerts suppressed since the previous one (to mention).
        """
        window = self._windows.get(key)
        if window is None:
            return 0
        if self._clock() < window.opened_at + self.window_seconds:
            return None
        return window.suppressed

    def count(self, key: SuppressionKey) -> None:
        """Record an alert that :meth:`admit` refused."""
        self._windows[key].suppressed += 1

    def opened(self, key: SuppressionKey, title: str, mentioned: int) -> None:
        """Record a notification for ``key`` that mentioned ``mentioned`` suppressed alerts."""
        previous = self._windows.pop(key, None)
        left = previous.suppressed - mentioned if previous else 0
        self._windows[key] = Window(self._clock(), title, max(left, 0))
        while len(self._windows) > self._max_keys:
            self._windows.popitem(last=False)

    def due(self) -> list[tuple[SuppressionKey, Window]]:
        """Closed windows with suppressed alerts nobody has been told about yet."""
        now = self._clock()
        return [
            (key, window)
            for key, window in self._windows.items()
            if window.suppressed and now >= window.opened_at + self.window_seconds
        ]

    def forget(self, key: SuppressionKey) -> None:
        """Drop ``key`` after its suppressed count was summarized."""
        self._windows.pop(key, None)


class RateCap:
    """At most ``per_minute`` messages per fixed 60-second window; the rest are counted.

    ``overflow`` is the number of alerts refused in windows that have ended and were not
    yet summarized (see :meth:`take_overflow`).
    """

    def __init__(self, per_minute: int, *, clock: Clock = time.time) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._start = -float("inf")
        self._used = 0
        self._dropped = 0
        self._dropped_since = 0.0

    def _roll(self) -> None:
        now = self._clock()
        if now >= self._start + 60:
            self._start = now
            self._used = 0

    def acquire(self, *, count: bool = True) -> bool:
        """Take a slot for one message; ``False`` if the minute is full (then, with
        ``count``, the refused alert is added to the overflow).
        """
        self._roll()
        if self._used < self.per_minute:
            self._used += 1
            return True
        if not count:
            return False
        if not self._dropped:
            self._dropped_since = self._clock()
        self._dropped += 1
        return False

    def release(self) -> None:
        """Give back a slot whose message could not be delivered."""
        self._used = max(self._used - 1, 0)

    def overflow(self) -> tuple[int, float] | None:
        """``(count, since)`` of refused alerts once their window has ended, else ``None``."""
        self._roll()
        if self._dropped and self._dropped_since < self._start:
            return self._dropped, self._dropped_since
        return None

    def clear_overflow(self) -> None:
        """Forget the refused alerts after they were summarized."""
        self._dropped = 0


class RecentIds:
    """The last ``size`` alert ids handled (a bounded LRU set)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, alert_id: str) -> None:
        """Remember ``alert_id`` (refreshing it if already known)."""
        self._ids[alert_id] = None
        self._ids.move_to_end(alert_id)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)


__all__ = [
    "LEVELS",
    "PAGERDUTY_SEVERITY",
    "RateCap",
    "RecentIds",
    "Route",
    "SuppressionKey",
    "Suppressor",
    "Window",
    "level_rank",
    "lookup",
    "suppression_key",
]
