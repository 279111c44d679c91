"""The back end: pySigma condition trees compiled into composed Python closures.

pySigma parses a rule, applies its modifiers and resolves ``1 of``/``all of`` patterns,
filters and the condition into a tree of AND/OR/NOT over ``field = value`` and keyword
leaves. This module walks that tree once per rule and returns a predicate over one
record (the native record or the ECS document). Values of one field OR-ed together
(``eventName: [A, B, C]``) are merged into a single test that reads the field once and
does a set lookup. It also extracts, for the index, which literal field values every
match requires.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from detector.detect import values
from detector.detect.fields import MISSING, Getter, getter, leaves, read_expr, text
from detector.errors import RuleError

#: A compiled test over one record.
Predicate = Callable[[Mapping[str, Any]], bool]
#: Literal values a field must equal (lower-cased) for a rule to possibly match.
Requirements = dict[str, frozenset[str]]
#: Values for ``expand`` placeholders, e.g. ``{"admins": ["root", "admin*"]}``.
Placeholders = Mapping[str, Sequence[str]]

Node = ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression | None


class Compiler:
    """Compiles conditions of rules; ``placeholders`` resolves ``expand`` values.

    Each condition becomes the source of one Python function (``compile``d): leaves on
    plain string values are inlined (``r.get(field)`` and a set lookup or ``startswith``),
    other leaves call the value tests of :mod:`detector.detect.values`.
    """

    def __init__(self, placeholders: Placeholders | None = None) -> None:
        self._placeholders = dict(placeholders or {})
        self._getters: dict[str, Getter] = {}

    # --- rules ---------------------------------------------------------------------

    def rule(self, rule: SigmaRule) -> tuple[Predicate, Requirements]:
        """The rule's predicate (its conditions OR-ed) and its index requirements."""
        trees = [cond.parse() for cond in rule.detection.parsed_condition]
        code = _Code()
        expr = " or ".join(f"({self._expr(t, code)})" for t in trees)
        reqs = [requirements(t) for t in trees]
        merged = reqs[0]
        for other in reqs[1:]:
            merged = _or_requirements(merged, other)
        return code.function(expr, rule.title), merged

    def detection(self, rule: SigmaRule, name: str) -> Predicate:
        """The predicate of one named detection (selection) of ``rule``."""
        detection = rule.detection.detections[name]
        return self.node(detection.postprocess(rule.detection))

    def item(self, rule: SigmaRule, item: SigmaDetectionItem | SigmaDetection) -> Predicate:
        """The predicate of one detection item (or nested detection) of ``rule``."""
        return self.node(item.postprocess(rule.detection))

    # --- tree ----------------------------------------------------------------------

    def node(self, node: Node) -> Predicate:
        """Compile one condition tree node into a predicate."""
        code = _Code()
        return code.function(self._expr(node, code), "detection")

    def _expr(self, node: Node, code: _Code) -> str:
        if node is None:
            return "False"
        if isinstance(node, ConditionAND):
            return " and ".join(f"({self._expr(a, code)})" for a in node.args) or "False"
        if isinstance(node, ConditionOR):
            return self._or_expr(list(node.args), code)
        if isinstance(node, ConditionNOT):
            return f"not ({self._expr(node.args[0], code)})"
        if isinstance(node, ConditionFieldEqualsValueExpression | ConditionValueExpression):
            return self._or_expr([node], code)
        raise RuleError(f"unsupported condition element {type(node).__name__}")

    def _or_expr(self, args: list[Any], code: _Code) -> str:
        # Group plain string values per field (and keywords) into one set/prefix test.
        strings: dict[str | None, list[SigmaString]] = {}
        others: list[str] = []
        for arg in args:
            if isinstance(arg, ConditionFieldEqualsValueExpression | ConditionValueExpression):
                field = arg.field if isinstance(arg, ConditionFieldEqualsValueExpression) else None
                for value in self._flatten(arg.value):
                    if isinstance(value, SigmaString):
                        pattern = _as_keyword(value) if field is None else value
                        strings.setdefault(field, []).append(pattern)
                    else:
                        others.append(self._leaf_expr(field, value, code))
            else:
                others.append(self._expr(arg, code))
        parts = [self._strings_expr(f, v, code) for f, v in strings.items()] + others
        return " or ".join(f"({p})" for p in parts) or "False"

    def _flatten(self, value: SigmaType) -> list[SigmaType]:
        """Expansion values (windash, base64offset) and resolved placeholders, OR-ed."""
        if isinstance(value, SigmaExpansion):
            return [v for item in value.values for v in self._flatten(item)]
        if isinstance(value, SigmaString) and value.contains_placeholder():
            return list(value.replace_placeholders(self._placeholder_strings))
        if isinstance(value, SigmaRegularExpression) and value.contains_placeholder():
            return list(value.replace_placeholders(self._placeholder_raw))
        return [value]

    def _placeholder_values(self, p: Placeholder) -> Sequence[str]:
        try:
            return self._placeholders[p.name]
        except KeyError:
            known = ", ".join(sorted(self._placeholders)) or "none configured"
            raise RuleError(
                f"placeholder %{p.name}% has no values (known placeholders: {known})"
            ) from None

    def _placeholder_strings(self, p: Placeholder) -> Any:
        for v in self._placeholder_values(p):
            yield SigmaString(v)

    def _placeholder_raw(self, p: Placeholder) -> Any:
        yield from self._placeholder_values(p)

    def _get(self, field: str) -> Getter:
        g = self._getters.get(field)
        if g is None:
            g = self._getters[field] = getter(field)
        return g

    def _read(self, field: str, code: _Code) -> str:
        """Source reading ``field`` from record ``r``."""
        return read_expr(field, code.ref(self._get(field)))

    def _strings_expr(self, field: str | None, patterns: list[SigmaString], code: _Code) -> str:
        slow = code.ref(values.string_values(patterns))
        if field is None:
            return f"{slow}(r)"
        folded = [p for p in patterns if not isinstance(p, SigmaCasedString)]
        if len(folded) != len(patterns):
            return f"{slow}({self._read(field, code)})"
        # Inline the common case: a string field, lower-cased, tested in place.
        if all(all(isinstance(x, str) for x in p.s) for p in folded):
            exact = frozenset("".join(p.s).lower() for p in folded)  # type: ignore[arg-type]
            fast = f"v.lower() in {code.ref(exact)}"
        else:
            fast = f"{code.ref(values.text_test(folded, cased=False))}(v.lower())"
        return (
            f"(v := {self._read(field, code)}).__class__ is str and {fast}"
            f" or v.__class__ is not str and {slow}(v)"
        )

    def _leaf_expr(self, field: str | None, value: SigmaType, code: _Code) -> str:
        if field is None:
            if isinstance(value, SigmaExists | SigmaFieldReference | SigmaNull):
                raise RuleError(f"{type(value).__name__} needs a field")
            return f"{code.ref(self._test(field, value))}(r)"
        if isinstance(value, SigmaExists):
            op = "is not" if bool(value) else "is"
            return f"{self._read(field, code)} {op} MISSING"
        if isinstance(value, SigmaFieldReference):
            fieldref = _fieldref(self._get(field), self._get(value.field), value)
            return f"{code.ref(fieldref)}(r)"
        if isinstance(value, SigmaRegularExpression | SigmaCIDRExpression):
            text_test = (
                values.regex_text(value)
                if isinstance(value, SigmaRegularExpression)
                else values.cidr_text(value)
            )
            slow = code.ref(values.on_text(text_test, lower=False))
            return (
                f"(v := {self._read(field, code)}).__class__ is str and "
                f"{code.ref(text_test)}(v) or v.__class__ is not str and {slow}(v)"
            )
        return f"{code.ref(self._test(field, value))}({self._read(field, code)})"

    def _test(self, field: str | None, value: SigmaType) -> Callable[[Any], bool]:
        """The test of one value on a field's value (or, for keywords, on the record)."""
        test: Callable[[Any], bool]
        if isinstance(value, SigmaNull):
            test = values.null_value
        elif isinstance(value, SigmaRegularExpression):
            test = values.on_text(values.regex_text(value), lower=False)
        elif isinstance(value, SigmaCIDRExpression):
            test = values.on_text(values.cidr_text(value), lower=False)
        elif isinstance(value, SigmaCompareExpression):
            test = values.compare_value(value)
        elif isinstance(value, SigmaBool):
            test = values.bool_value(value)
        elif isinstance(value, SigmaNumber):
            if field is None:
                test = values.string_values([_as_keyword(SigmaString(str(value.number)))])
            else:
                test = values.number_value(value)
        else:
            raise RuleError(f"value type {type(value).__name__} is not supported by the engine")
        return test


class _Code:
    """Source of one generated predicate and the objects it refers to."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {"MISSING": MISSING}

    def ref(self, obj: Any) -> str:
        """A name under which generated source can use ``obj``."""
        name = f"_{len(self.namespace)}"
        self.namespace[name] = obj
        return name

    def function(self, expr: str, label: str) -> Predicate:
        """Compile ``expr`` (over record ``r``) into a function."""
        # Every operand is a bool, so the and/or chain is one too.
        source = f"def predicate(r):\n    return {expr}\n"
        exec(compile(source, f"<sigma: {label}>", "exec"), self.namespace)
        predicate: Predicate = self.namespace["predicate"]
        return predicate


def _as_keyword(value: SigmaString) -> SigmaString:
    """Keywords search inside every string of the record: wrap the pattern in ``*``."""
    wrapped = value
    if not wrapped.startswith(SpecialChars.WILDCARD_MULTI):
        wrapped = SpecialChars.WILDCARD_MULTI + wrapped
    if not wrapped.endswith(SpecialChars.WILDCARD_MULTI):
        wrapped = wrapped + SpecialChars.WILDCARD_MULTI
    if isinstance(value, SigmaCasedString) and not isinstance(wrapped, SigmaCasedString):
        wrapped = SigmaCasedString.from_sigma_string(wrapped)
    return wrapped


def _fieldref(get: Getter, ref: Getter, value: SigmaFieldReference) -> Predicate:
    """``fieldref``: the field equals (or starts/ends with, contains) another field's value."""
    starts, ends = value.starts_with, value.ends_with

    def compare(a: str, b: str) -> bool:
        if starts and ends:
            return b in a
        if starts:
            return a.startswith(b)
        if ends:
            return a.endswith(b)
        return a == b

    def test(record: Mapping[str, Any]) -> bool:
        left, right = get(record), ref(record)
        if left is MISSING or right is MISSING or left is None or right is None:
            return False
        rights = [t.lower() for t in (text(x) for x in leaves(right)) if t is not None]
        for x in leaves(left):
            t = text(x)
            if t is not None and any(compare(t.lower(), b) for b in rights):
                return True
        return False

    return test


# --- index requirements ---------------------------------------------------------------


def requirements(node: Node) -> Requirements:
    """Fields with the literal values one of which every match must have (lower-cased).

    ``eventName: [A, B] and eventSource: s`` requires ``eventname in {a, b}`` and
    ``eventsource = s``; OR keeps only fields required on every branch; NOT requires nothing.
    """
    if isinstance(node, ConditionAND):
        merged: Requirements = {}
        for arg in node.args:
            for field, vals in requirements(arg).items():
                merged[field] = merged[field] & vals if field in merged else vals
        return merged
    if isinstance(node, ConditionOR):
        branches = [requirements(arg) for arg in node.args]
        if not branches:
            return {}
        out = branches[0]
        for other in branches[1:]:
            out = _or_requirements(out, other)
        return out
    if isinstance(node, ConditionFieldEqualsValueExpression):
        lits = _literals(node.value)
        return {node.field: lits} if lits is not None else {}
    return {}


def _literals(value: SigmaType) -> frozenset[str] | None:
    if isinstance(value, SigmaExpansion):
        out: set[str] = set()
        for item in value.values:
            lits = _literals(item)
            if lits is None:
                return None
            out |= lits
        return frozenset(out)
    if isinstance(value, SigmaString) and all(isinstance(p, str) for p in value.s):
        # The unescaped text (``to_plain`` would re-escape wildcards).
        return frozenset({"".join(value.s).lower()})  # type: ignore[arg-type]
    return None


def _or_requirements(a: Requirements, b: Requirements) -> Requirements:
    return {f: a[f] | b[f] for f in a.keys() & b.keys()}
