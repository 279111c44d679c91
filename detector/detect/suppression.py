"""Alert suppression settings of rules: the ``suppression`` attribute and global defaults.

A rule opts in with a custom Sigma attribute (pySigma keeps it in ``custom_attributes``;
other Sigma tools ignore it)::

    suppression:
      group_by: [user.name, source.ip]   # fields of the alert's first event (ECS, then native)
      window: 30m                        # Sigma timespan: 90s, 30m, 2h, 1d

``suppression: true`` takes the defaults and ``suppression: false`` turns it off for the
rule whatever the global setting. Without group-by fields (a single-event rule with
``suppression: true`` and no ``rules.suppression.group_by``), all the rule's alerts of a
window share one document. A correlation's defaults are its own ``group-by`` and
``timespan``; a single-event rule's come from the ``rules.suppression`` settings
(:class:`SuppressionDefaults`). The alerts of one group whose times fall in one window
(aligned on the epoch, in event time) share one document; see
:attr:`detector.models.Alert.document_id`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sigma.correlations import SigmaCorrelationRule, SigmaCorrelationTimespan
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRuleBase

from detector.errors import RuleError
from detector.models import Suppression

#: The custom Sigma attribute.
ATTRIBUTE = "suppression"
_R = TypeVar("_R", bound=SigmaRuleBase)
#: Window of single-event rules when neither the rule nor the settings give one.
DEFAULT_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class SuppressionDefaults:
    """The ``rules.suppression`` settings.

    ``enabled`` suppresses every correlation (by its group-by, within its timespan) and,
    when ``group_by`` is set, every single-event rule (by those fields, within
    ``window_seconds``); rules with their own ``suppression`` attribute always follow it.
    """

    enabled: bool = False
    group_by: tuple[str, ...] = ()
    window_seconds: float = DEFAULT_WINDOW_SECONDS


def suppression_of(
    rule: SigmaRuleBase, defaults: SuppressionDefaults | None = None
) -> Suppression | None:
    """The suppression of ``rule`` under ``defaults``; :class:`RuleError` if its
    ``suppression`` attribute is malformed."""
    defaults = defaults or SuppressionDefaults()
    value = rule.custom_attributes.get(ATTRIBUTE)
    correlation = isinstance(rule, SigmaCorrelationRule)
    if value is None:
        if not defaults.enabled or not (correlation or defaults.group_by):
            return None
        value = {}
    if value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict) or set(value) - {"group_by", "window"}:
        raise RuleError(
            "'suppression' is true, false or a mapping with 'group_by' (list of fields) "
            "and 'window' (a timespan such as 30m)"
        )
    group_by = _fields(value.get("group_by"))
    window = _window(value.get("window"))
    if isinstance(rule, SigmaCorrelationRule):
        group_by = group_by if group_by is not None else tuple(rule.group_by or ())
        window = window if window is not None else float(rule.timespan.seconds)
    else:
        group_by = group_by if group_by is not None else defaults.group_by
        window = window if window is not None else defaults.window_seconds
    return Suppression(group_by=group_by, window_seconds=window)


def suppression_errors(
    rules: Sequence[SigmaRuleBase], defaults: SuppressionDefaults | None = None
) -> list[RuleError]:
    """A problem per rule whose ``suppression`` attribute is malformed."""
    errors: list[RuleError] = []
    for rule in rules:
        try:
            suppression_of(rule, defaults)
        except RuleError as exc:
            label = f"rule {rule.title!r}" + (f" ({rule.id})" if rule.id else "")
            path = getattr(rule.source, "path", None)
            errors.append(RuleError(f"{label}: {exc.args[0]}", str(path) if path else None))
    return errors


def resolved(rule: _R, defaults: SuppressionDefaults) -> _R:
    """``rule``, or a copy whose attribute holds its suppression under ``defaults`` (the
    engines read rules, so the global defaults must travel with the rule). A malformed
    attribute is left as it is (see :func:`suppression_errors`)."""
    try:
        found = suppression_of(rule, defaults)
    except RuleError:
        return rule
    current = rule.custom_attributes.get(ATTRIBUTE)
    value: Any = False if current is not None else None
    if found is not None:
        window = found.window_seconds
        value = {"group_by": list(found.group_by), "window": f"{window:g}s"}
    if current == value:
        return rule
    changed = copy.copy(rule)
    changed.custom_attributes = {**rule.custom_attributes, ATTRIBUTE: value}
    return changed


def suppression_or_none(rule: SigmaRuleBase) -> Suppression | None:
    """:func:`suppression_of` without defaults, ``None`` for a malformed attribute (for
    building ``RuleInfo``; the loader's checks report the problem)."""
    try:
        return suppression_of(rule)
    except RuleError:
        return None


def _fields(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError("'suppression.group_by' is a list of field names")
    return tuple(value)


def _window(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(SigmaCorrelationTimespan(str(value)).seconds)
    except (SigmaError, ValueError):
        raise RuleError(
            f"'suppression.window' {value!r} is not a timespan (a number and s, m, h, d)"
        ) from None
