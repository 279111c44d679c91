"""The candidate index: which rules an event can possibly match, from literal field values.

Each rule is filed under one field whose value every match requires (for CloudTrail
usually ``eventName``): the required field with the most distinct values across the
rules, so that a lookup narrows the most. Rules with no such field are tested on every
record. The lookups and the calls of the candidates' predicates are generated as one
Python function per log source (native and ECS index together), so matching an event
is a handful of dict lookups plus the predicates of the few candidate rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from detector.detect.compiler import Predicate
from detector.detect.fields import MISSING, getter, leaves, read_expr, text
from detector.detect.ruleset import CompiledRule

#: Candidates of one table entry: (rule, its predicate) pairs.
Entry = tuple[tuple[CompiledRule, Predicate], ...]


class RuleIndex:
    """Rules of one record kind (native or ECS) for one log source, indexed by literals."""

    __slots__ = ("always", "keys", "rules")

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        distinct: dict[str, set[str]] = {}
        for rule in rules:
            for fld, vals in rule.requirements.items():
                distinct.setdefault(fld, set()).update(vals)
        tables: dict[str, dict[str, list[CompiledRule]]] = {}
        always: list[CompiledRule] = []
        for rule in rules:
            if not rule.requirements:
                always.append(rule)
                continue
            fld = max(
                rule.requirements,
                key=lambda f: (len(distinct[f]), -len(rule.requirements[f]), f),
            )
            table = tables.setdefault(fld, {})
            for value in rule.requirements[fld]:
                table.setdefault(value, []).append(rule)
        usage = Counter({f: sum(len(v) for v in t.values()) for f, t in tables.items()})
        #: Index fields, most used first, with their value -> candidates tables.
        self.keys: tuple[tuple[str, dict[str, Entry]], ...] = tuple(
            (f, {v: tuple((r, r.matches) for r in rs) for v, rs in tables[f].items()})
            for f, _ in usage.most_common()
        )
        #: Rules tested on every record (no literal requirement).
        self.always = tuple(always)

    def lines(self, tag: str, namespace: dict[str, Any]) -> list[str]:
        """Generated statements appending the matching rules of record ``r`` to ``out``."""
        lines: list[str] = []
        for i, (fld, table) in enumerate(self.keys):
            t, g = f"{tag}T{i}", f"{tag}G{i}"
            namespace[t] = table
            namespace[g] = getter(fld)
            lines += [
                f"    v = {read_expr(fld, g)}",
                "    if v.__class__ is str:",
                f"        c = {t}.get(v.lower())",
                "    elif v is MISSING or v is None:",
                "        c = None",
                "    else:",
                f"        c = _many({t}, v)",
                "    if c is not None:",
                "        for rule, pred in c:",
                "            if pred(r):",
                "                out.append(rule)",
            ]
        for j, rule in enumerate(self.always):
            namespace[f"{tag}R{j}"] = rule
            namespace[f"{tag}P{j}"] = rule.matches
            lines += [f"    if {tag}P{j}(r):", f"        out.append({tag}R{j})"]
        return lines


def matcher(
    native: RuleIndex, ecs: RuleIndex
) -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[CompiledRule]]:
    """One generated function ``(raw, ecs) -> matching rules`` (in a fixed order) for the
    native-field index over ``raw`` and the ECS index over ``ecs``.
    """
    generated: Callable[[Mapping[str, Any], Mapping[str, Any]], list[CompiledRule]]
    generated = _generate([("raw", native), ("ecs", ecs)], "raw, ecs")
    return generated


def _generate(parts: list[tuple[str, RuleIndex]], params: str) -> Any:
    namespace: dict[str, Any] = {"MISSING": MISSING, "_many": _many}
    lines = [f"def matching({params}):", "    out = []"]
    for name, index in parts:
        body = index.lines(name.upper(), namespace)
        if body:
            lines += [f"    r = {name}", *body]
    lines.append("    return out")
    exec(compile("\n".join(lines) + "\n", "<rule index>", "exec"), namespace)
    return namespace["matching"]


def _many(table: Mapping[str, Entry], value: Any) -> Entry | None:
    """Candidates for a list- or object-valued field: every element's, each rule once."""
    seen: dict[int, tuple[CompiledRule, Predicate]] = {}
    for leaf in leaves(value):
        t = text(leaf)
        if t is not None:
            for pair in table.get(t.lower(), ()):
                seen.setdefault(id(pair[0]), pair)
    return tuple(seen.values()) or None
