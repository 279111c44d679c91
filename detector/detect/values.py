"""Value tests: pySigma value types turned into predicates over one field's value.

Semantics (the same for every rule, documented in ``docs``-facing docstrings here):

- A field holding a list matches when any element matches; a field holding an object
  matches a string/number pattern when any value nested in it matches (so
  ``requestParameters|contains: 'Suspended'`` searches the request parameters).
- Strings are compared case-insensitively unless the ``cased`` modifier is used; ``*``
  matches any run of characters (newlines included) and ``?`` exactly one.
- Numbers, booleans and ``null`` in events are matched by string patterns through their
  JSON spelling (``5``, ``true``); an absent field or ``null`` matches nothing but ``null``.
- ``re`` searches (unanchored, as PCRE tools do) with RE2; flags ``i``/``m``/``s`` map to
  RE2's ``(?i)``/``(?m)``/``(?s)``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import re2
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SigmaTimestampPart,
    SpecialChars,
    TimestampPart,
)

from detector.detect.fields import MISSING, leaves, text
from detector.errors import RuleError

#: A test on one field's resolved value (which may be :data:`MISSING`).
ValueTest = Callable[[Any], bool]
#: A test on a (lower-cased unless ``cased``) string.
TextTest = Callable[[str], bool]

_RE_SPECIAL = frozenset("\\.^$|?*+()[]{}")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}


def compile_re2(pattern: str) -> Any:
    """Compile ``pattern`` with RE2; a pattern outside RE2's syntax is a :class:`RuleError`."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        message = f"regular expression {pattern!r} is not supported by RE2: {detail}"
        raise RuleError(message) from exc


def wildcard_regex(s: SigmaString, lower: bool) -> str:
    """An anchored RE2 pattern equivalent to the Sigma wildcard string ``s``."""
    out = ["(?s)^"]
    for part in s.s:
        if isinstance(part, str):
            lit = part.lower() if lower else part
            out.append("".join("\\" + c if c in _RE_SPECIAL else c for c in lit))
        elif part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            raise RuleError(f"unresolved placeholder in value {s.original!r}")
    out.append("$")
    return "".join(out)


def text_test(strings: Iterable[SigmaString], cased: bool) -> TextTest:
    """One test matching a string against any of ``strings`` (Sigma wildcard patterns).

    Plain values become a set lookup, ``x*``/``*x``/``*x*`` become ``startswith``/
    ``endswith``/``in``, anything else an anchored RE2 pattern.
    """
    lower = not cased
    exact: set[str] = set()
    prefixes: list[str] = []
    suffixes: list[str] = []
    infixes: list[str] = []
    patterns: list[str] = []
    match_all = False
    for s in strings:
        parts = s.s
        plain = [p.lower() if lower else p for p in parts if isinstance(p, str)]
        multi = SpecialChars.WILDCARD_MULTI
        if any(p is not multi and not isinstance(p, str) for p in parts):
            patterns.append(wildcard_regex(s, lower))
        elif not parts:
            exact.add("")
        elif all(p is multi for p in parts):
            match_all = True
        elif len(parts) == 1:
            exact.add(plain[0])
        elif len(parts) == 2 and parts[1] is multi and isinstance(parts[0], str):
            prefixes.append(plain[0])
        elif len(parts) == 2 and parts[0] is multi and isinstance(parts[1], str):
            suffixes.append(plain[0])
        elif len(parts) == 3 and parts[0] is multi and parts[2] is multi and len(plain) == 1:
            infixes.append(plain[0])
        else:
            patterns.append(wildcard_regex(s, lower))
    if match_all:
        return _always
    tests: list[TextTest] = []
    if exact:
        tests.append(frozenset(exact).__contains__)
    if prefixes:
        pre = tuple(prefixes)
        tests.append(lambda v: v.startswith(pre))
    if suffixes:
        suf = tuple(suffixes)
        tests.append(lambda v: v.endswith(suf))
    if len(infixes) == 1:
        infix = infixes[0]
        tests.append(lambda v: infix in v)
    elif infixes:
        inf = tuple(infixes)
        tests.append(lambda v: any(i in v for i in inf))
    if patterns:
        rx = compile_re2("|".join(f"(?:{p})" for p in patterns))
        tests.append(memoized(lambda v: rx.search(v) is not None))
    return _any_of(tests)


#: Entries kept per memoized test before its cache is reset.
MEMO_SIZE = 4096
#: Longest value a memoized test caches: the values that repeat (actions, addresses,
#: user agents) are short, and a cap in characters, not only entries, keeps an attacker
#: who sends unique huge values from pinning MEMO_SIZE of them in memory.
MEMO_VALUE_CHARS = 512


def memoized(test: TextTest) -> TextTest:
    """Cache a costly text test (RE2, IP parsing) per value: field values repeat a lot.

    Bounded by size: at most :data:`MEMO_SIZE` entries (then the cache is emptied) of at
    most :data:`MEMO_VALUE_CHARS` characters; longer values are tested uncached.
    """
    cache: dict[str, bool] = {}

    def cached(value: str) -> bool:
        hit = cache.get(value)
        if hit is None:
            hit = test(value)
            if len(value) <= MEMO_VALUE_CHARS:
                if len(cache) >= MEMO_SIZE:
                    cache.clear()
                cache[value] = hit
        return hit

    return cached


def _always(_: str) -> bool:
    return True


def _any_of(tests: Sequence[TextTest]) -> TextTest:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        a, b = tests
        return lambda v: a(v) or b(v)
    return lambda v: any(t(v) for t in tests)


def on_text(test: TextTest, lower: bool) -> ValueTest:
    """Lift a text test to a field value: strings directly, lists/objects element-wise."""
    if lower:

        def value_test_lower(value: Any) -> bool:
            if value.__class__ is str:
                return test(value.lower())
            return _slow_text(value, test, True)

        return value_test_lower

    def value_test(value: Any) -> bool:
        if value.__class__ is str:
            return test(value)
        return _slow_text(value, test, False)

    return value_test


def _slow_text(value: Any, test: TextTest, lower: bool) -> bool:
    if value is MISSING or value is None:
        return False
    for leaf in leaves(value):
        t = text(leaf)
        if t is not None and test(t.lower() if lower else t):
            return True
    return False


def string_values(values: Sequence[SigmaString]) -> ValueTest:
    """OR of Sigma strings (grouped by case sensitivity) as one value test."""
    cased = [v for v in values if isinstance(v, SigmaCasedString)]
    folded = [v for v in values if not isinstance(v, SigmaCasedString)]
    tests: list[ValueTest] = []
    if folded:
        tests.append(on_text(text_test(folded, cased=False), lower=True))
    if cased:
        tests.append(on_text(text_test(cased, cased=True), lower=False))
    if len(tests) == 1:
        return tests[0]
    a, b = tests
    return lambda v: a(v) or b(v)


def regex_text(value: SigmaRegularExpression) -> TextTest:
    """A ``re`` value: unanchored RE2 search (case-sensitive unless ``i``), memoized."""
    if value.regexp.contains_placeholder():
        raise RuleError(f"unresolved placeholder in regular expression {value.regexp.original!r}")
    flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags))
    pattern = str(value.regexp)
    rx = compile_re2(f"(?{flags}){pattern}" if flags else pattern)
    return memoized(lambda v: rx.search(v) is not None)


def cidr_text(value: SigmaCIDRExpression) -> TextTest:
    """A ``cidr`` value: the text is an IPv4/IPv6 address inside the network, memoized."""
    network = value.network

    def test(v: str) -> bool:
        try:
            return ipaddress.ip_address(v.strip()) in network
        except ValueError:
            return False

    return memoized(test)


def number_value(value: SigmaNumber) -> ValueTest:
    """A number: numeric equality, or text equality with the number's spelling for strings."""
    if isinstance(value, SigmaTimestampPart):
        return time_part_value(value.timestamp_part, lambda n: n == value.number)
    n = value.number
    spelled = str(n)

    def test(v: Any) -> bool:
        for leaf in leaves(v):
            if isinstance(leaf, bool) or leaf is None:
                continue
            if isinstance(leaf, int | float):
                if leaf == n:
                    return True
            elif isinstance(leaf, str) and leaf == spelled:
                return True
        return False

    return _present(test)


def bool_value(value: SigmaBool) -> ValueTest:
    """A boolean: JSON booleans, or the strings ``true``/``false`` in any case."""
    b = value.boolean
    spelled = "true" if b else "false"

    def test(v: Any) -> bool:
        for leaf in leaves(v):
            if leaf is b or (isinstance(leaf, str) and leaf.lower() == spelled):
                return True
        return False

    return _present(test)


def null_value(value: Any) -> bool:
    """``field: null``: the field is absent, ``null`` or an empty list."""
    return value is MISSING or value is None or (isinstance(value, list) and not value)


_COMPARE: dict[CompareOperators, Callable[[float, float], bool]] = {
    CompareOperators.LT: lambda a, b: a < b,
    CompareOperators.LTE: lambda a, b: a <= b,
    CompareOperators.GT: lambda a, b: a > b,
    CompareOperators.GTE: lambda a, b: a >= b,
    CompareOperators.NEQ: lambda a, b: a != b,
}


def compare_value(value: SigmaCompareExpression) -> ValueTest:
    """``lt``/``lte``/``gt``/``gte``: numeric comparison (numbers, or numeric strings)."""
    op = _COMPARE[value.op]
    bound = value.number.number
    if isinstance(value.number, SigmaTimestampPart):
        return time_part_value(value.number.timestamp_part, lambda n: op(n, bound))

    def test(v: Any) -> bool:
        for leaf in leaves(v):
            n = as_number(leaf)
            if n is not None and op(n, bound):
                return True
        return False

    return _present(test)


def as_number(leaf: Any) -> float | None:
    """``leaf`` as a number: ints and floats, or numeric strings; never booleans."""
    if isinstance(leaf, bool) or leaf is None:
        return None
    if isinstance(leaf, int | float):
        return leaf
    if isinstance(leaf, str):
        try:
            return float(leaf)
        except ValueError:
            return None
    return None


def time_part_value(part: TimestampPart, check: Callable[[int], bool]) -> ValueTest:
    """Time-part modifiers: extract minute/hour/day/week/month/year from a timestamp field.

    Timestamps are ISO 8601 strings (read as written, no time-zone conversion, as the
    specification says) or epoch numbers (seconds, or milliseconds above 1e11) in UTC.
    """

    def test(v: Any) -> bool:
        for leaf in leaves(v):
            n = time_part(leaf, part)
            if n is not None and check(n):
                return True
        return False

    return _present(test)


def time_part(leaf: Any, part: TimestampPart) -> int | None:
    """The ``part`` of timestamp ``leaf``, or ``None`` if it is not a timestamp."""
    dt: datetime
    if isinstance(leaf, bool) or leaf is None:
        return None
    if isinstance(leaf, int | float):
        seconds = leaf / 1000 if abs(leaf) > 1e11 else leaf
        try:
            dt = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(leaf, str):
        try:
            dt = datetime.fromisoformat(leaf.strip())
        except ValueError:
            return None
    else:
        return None
    if part is TimestampPart.MINUTE:
        return dt.minute
    if part is TimestampPart.HOUR:
        return dt.hour
    if part is TimestampPart.DAY:
        return dt.day
    if part is TimestampPart.WEEK:
        return dt.isocalendar().week
    if part is TimestampPart.MONTH:
        return dt.month
    return dt.year


def _present(test: ValueTest) -> ValueTest:
    def guarded(value: Any) -> bool:
        if value is MISSING or value is None:
            return False
        return test(value)

    return guarded
