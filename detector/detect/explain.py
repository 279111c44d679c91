"""Explanations: which detections and detection items of a rule held on an event, and why.

Slow on purpose: each detection item is compiled on its own and evaluated against the
event, next to the value the event actually has (for ``detector rules explain``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem

from detector.detect.compiler import Compiler
from detector.detect.fields import MISSING, getter
from detector.detect.ruleset import CompiledRule, RuleSet
from detector.models import Event


@dataclass(frozen=True, slots=True)
class ItemTrace:
    """One detection item: ``field|modifiers: values`` (``field`` None for keywords)."""

    field: str | None
    modifiers: tuple[str, ...]
    values: tuple[str, ...]
    actual: Any
    matched: bool

    def describe(self) -> str:
        """``eventName == ['DeleteTrail'] -> 'StopLogging': no``."""
        key = (self.field or "<keyword>") + "".join(f"|{m}" for m in self.modifiers)
        shown = "<absent>" if self.actual is _ABSENT else repr(self.actual)
        verdict = "yes" if self.matched else "no"
        return f"{key}: {list(self.values)} -> {shown}: {verdict}"


@dataclass(frozen=True, slots=True)
class SelectionTrace:
    """One named detection of the rule (``selection``, ``filter_main_*``...)."""

    name: str
    matched: bool
    items: tuple[ItemTrace, ...]


@dataclass(frozen=True, slots=True)
class Explanation:
    """A rule against one event: the overall result and every detection's."""

    rule_id: str
    title: str
    applies: bool
    matched: bool
    condition: tuple[str, ...]
    selections: tuple[SelectionTrace, ...]

    def lines(self) -> list[str]:
        """A human-readable rendering."""
        out = [f"{self.title} ({self.rule_id}): {'MATCH' if self.matched else 'no match'}"]
        if not self.applies:
            out.append("  rule does not apply to this event's log source")
        out.append("  condition: " + " | ".join(self.condition))
        for sel in self.selections:
            out.append(f"  {sel.name}: {'held' if sel.matched else 'did not hold'}")
            out.extend(f"    {item.describe()}" for item in sel.items)
        return out


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT = _Absent()


def explain(
    rules: RuleSet,
    rule_id: str,
    event: Event,
) -> Explanation:
    """Explain why rule ``rule_id`` (id or name) does or does not match ``event``."""
    rule = rules.rule(rule_id)
    compiler = Compiler(rules.placeholders)
    record: Mapping[str, Any] = event.ecs if rule.scope.ecs else event.raw
    selections: list[SelectionTrace] = []
    for name, detection in rule.sigma.detection.detections.items():
        items = tuple(_items(compiler, rule, detection, record))
        matched = compiler.detection(rule.sigma, name)(record)
        selections.append(SelectionTrace(_display(name), matched, items))
    applies = rule.scope.applies(event.logsource, event.family)
    return Explanation(
        rule_id=rule.info.id,
        title=rule.info.title,
        applies=applies,
        matched=applies and rule.matches(record),
        condition=tuple(rule.sigma.detection.condition),
        selections=tuple(selections),
    )


def _items(
    compiler: Compiler,
    rule: CompiledRule,
    detection: SigmaDetection,
    record: Mapping[str, Any],
) -> list[ItemTrace]:
    out: list[ItemTrace] = []
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            out.extend(_items(compiler, rule, item, record))
            continue
        out.append(_item(compiler, rule, item, record))
    return out


def _item(
    compiler: Compiler,
    rule: CompiledRule,
    item: SigmaDetectionItem,
    record: Mapping[str, Any],
) -> ItemTrace:
    actual: Any = _ABSENT
    if item.field is not None:
        value = getter(item.field)(record)
        actual = _ABSENT if value is MISSING else value
    values = tuple(str(v) for v in (item.original_value or item.value))
    modifiers = tuple(reverse_modifier_mapping.get(m.__name__, m.__name__) for m in item.modifiers)
    return ItemTrace(
        field=item.field,
        modifiers=modifiers,
        values=values,
        actual=actual,
        matched=compiler.item(rule.sigma, item)(record),
    )


def _display(name: str) -> str:
    """Detections added by Sigma filter documents carry a random ``_filt_xxxxxxxxxx_`` prefix."""
    if name.startswith("_filt_") and name.count("_") >= 3:
        return "filter:" + name.split("_", 3)[3]
    return name
