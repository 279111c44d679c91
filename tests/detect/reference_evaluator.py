"""A naive, independent Sigma evaluator for the differential test.

It reads the rule's YAML dictionary directly (no pySigma, no engine code) and evaluates
it the slow, obvious way: its own condition parser, its own wildcard matcher (no
regular expressions), its own modifier transformations. Semantics are the engine's
documented ones: case-insensitive unless ``cased``; lists match by any element; objects
by any nested value; numbers and booleans by their JSON spelling; keywords search every
string of the record (contains); ``re`` is an unanchored search; ``neq`` negates the
item; ``null`` means absent, ``null`` or an empty list.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

ABSENT = object()
WILDCARD_MULTI = object()
WILDCARD_SINGLE = object()


# --- record access ----------------------------------------------------------------


def resolve(record: Any, name: str) -> Any:
    """Value of a dotted field: nested dicts, lists of dicts, else a literal dotted key."""
    found = _walk(record, name.split("."))
    if found:
        if len(found) == 1:
            return found[0]
        flat: list[Any] = []
        for f in found:
            flat.extend(f if isinstance(f, list) else [f])
        return flat
    if isinstance(record, dict) and name in record:
        return record[name]
    return ABSENT


def _walk(node: Any, parts: list[str]) -> list[Any]:
    if not parts:
        return [node]
    if isinstance(node, dict):
        if parts[0] in node:
            return _walk(node[parts[0]], parts[1:])
        return []
    if isinstance(node, list):
        out: list[Any] = []
        for item in node:
            if isinstance(item, dict | list):
                out.extend(_walk(item, parts))
        return out
    return []


def leaves(value: Any) -> list[Any]:
    """Every scalar under ``value``."""
    if isinstance(value, list):
        return [x for v in value for x in leaves(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in leaves(v)]
    return [value]


def spelled(leaf: Any) -> str | None:
    """JSON spelling of a scalar for string matching."""
    if isinstance(leaf, bool):
        return "true" if leaf else "false"
    if isinstance(leaf, str):
        return leaf
    if isinstance(leaf, int | float):
        return str(leaf)
    return None


def texts(value: Any) -> list[str]:
    """All string forms under a field value (none for absent/null)."""
    if value is ABSENT or value is None:
        return []
    return [t for t in (spelled(x) for x in leaves(value)) if t is not None]


# --- Sigma strings --------------------------------------------------------------------


def tokens(s: str) -> list[Any]:
    """Sigma string -> characters and wildcard markers, with Sigma's escaping rules."""
    out: list[Any] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s) and s[i + 1] in "*?\\":
            out.append(s[i + 1])
            i += 2
        elif c == "*":
            out.append(WILDCARD_MULTI)
            i += 1
        elif c == "?":
            out.append(WILDCARD_SINGLE)
            i += 1
        else:
            out.append(c)
            i += 1
    return out


def wildcard_match(pattern: list[Any], text: str) -> bool:
    """Dynamic programming over pattern tokens and text characters."""
    n = len(text)
    reachable = {0}
    for tok in pattern:
        nxt: set[int] = set()
        if tok is WILDCARD_MULTI:
            lowest = min(reachable) if reachable else n + 1
            nxt = set(range(lowest, n + 1))
        else:
            for pos in reachable:
                if pos < n and (tok is WILDCARD_SINGLE or text[pos] == tok):
                    nxt.add(pos + 1)
        reachable = nxt
        if not reachable:
            return False
    return n in reachable


def _lower_tokens(pattern: list[Any]) -> list[Any]:
    out: list[Any] = []
    for t in pattern:
        if isinstance(t, str):
            out.extend(t.lower())
        else:
            out.append(t)
    return out


# --- modifiers --------------------------------------------------------------------

TIME_PARTS = ("minute", "hour", "day", "week", "month", "year")
COMPARE = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _plain_text(pattern: list[Any]) -> str:
    assert all(isinstance(t, str) for t in pattern), "encodings need plain values"
    return "".join(pattern)


def _encode_wide(pattern: list[Any], codec: str) -> list[Any]:
    out: list[Any] = []
    for t in pattern:
        if isinstance(t, str):
            out.extend(t.encode(codec).decode("latin-1"))
        else:
            out.append(t)
    return out


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode()


def _b64_offsets(text: str) -> list[str]:
    """The three shifted encodings whose stable middle appears inside any base64 text."""
    raw = text.encode("utf-8")
    out = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        start = {0: 0, 1: 2, 2: 3}[shift]
        end_trim = {0: 0, 1: 3, 2: 2}[(len(raw) + shift) % 3]
        out.append(encoded[start : len(encoded) - end_trim])
    return out


def _windash(pattern: list[Any]) -> list[list[Any]]:
    """Each dash/slash that starts a word (after a non-word char) in all five spellings."""
    spots = []
    for i, t in enumerate(pattern):
        if t in ("-", "/"):
            before = pattern[i - 1] if i > 0 else None
            after = pattern[i + 1] if i + 1 < len(pattern) else None
            before_word = isinstance(before, str) and (before.isalnum() or before == "_")
            after_word = isinstance(after, str) and (after.isalnum() or after == "_")
            if not before_word and after_word:
                spots.append(i)
    variants = [list(pattern)]
    for i in spots:
        variants = [
            [*v[:i], dash, *v[i + 1 :]]
            for v in variants
            for dash in ("-", "/", "\u2013", "\u2014", "\u2015")
        ]
    return variants


def string_patterns(value: Any, mods: list[str], placeholders: dict[str, list[str]]) -> list[Any]:
    """Value + transformation modifiers -> OR-ed token patterns."""
    text = value if isinstance(value, str) else spelled(value)
    assert text is not None
    if "expand" in mods:
        pieces = re.split(r"(%[A-Za-z0-9_]+%)", text)
        combos = [""]
        for piece in pieces:
            if piece.startswith("%") and piece.endswith("%") and len(piece) > 2:
                combos = [c + v for c in combos for v in placeholders[piece[1:-1]]]
            else:
                combos = [c + piece for c in combos]
        patterns = [tokens(c) for c in combos]
    else:
        patterns = [tokens(text)]
    for mod in mods:
        if mod in ("wide", "utf16le"):
            patterns = [_encode_wide(p, "utf-16le") for p in patterns]
        elif mod == "utf16be":
            patterns = [_encode_wide(p, "utf-16be") for p in patterns]
        elif mod == "utf16":
            patterns = [["\ufeff", *_encode_wide(p, "utf-16le")] for p in patterns]
        elif mod == "base64":
            patterns = [list(_b64(_plain_text(p))) for p in patterns]
        elif mod == "base64offset":
            patterns = [list(v) for p in patterns for v in _b64_offsets(_plain_text(p))]
        elif mod == "windash":
            patterns = [v for p in patterns for v in _windash(p)]
        elif mod == "contains":
            patterns = [_wrap(p, True, True) for p in patterns]
        elif mod == "startswith":
            patterns = [_wrap(p, False, True) for p in patterns]
        elif mod == "endswith":
            patterns = [_wrap(p, True, False) for p in patterns]
    return patterns


def _wrap(p: list[Any], front: bool, back: bool) -> list[Any]:
    out = list(p)
    if front and (not out or out[0] is not WILDCARD_MULTI):
        out = [WILDCARD_MULTI, *out]
    if back and (not out or out[-1] is not WILDCARD_MULTI):
        out = [*out, WILDCARD_MULTI]
    return out


def time_part(leaf: Any, part: str) -> int | None:
    if isinstance(leaf, bool) or leaf is None:
        return None
    if isinstance(leaf, int | float):
        dt = datetime.fromtimestamp(leaf / 1000 if abs(leaf) > 1e11 else leaf, UTC)
    elif isinstance(leaf, str):
        try:
            dt = datetime.fromisoformat(leaf.strip())
        except ValueError:
            return None
    else:
        return None
    return {
        "minute": dt.minute,
        "hour": dt.hour,
        "day": dt.day,
        "week": dt.isocalendar()[1],
        "month": dt.month,
        "year": dt.year,
    }[part]


def as_number(leaf: Any) -> float | None:
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


# --- detection items ----------------------------------------------------------------


class Reference:
    """Evaluates one rule (as a YAML dictionary) on records."""

    def __init__(self, rule: dict[str, Any], placeholders: dict[str, list[str]] | None = None):
        self.rule = rule
        self.placeholders = placeholders or {}
        detection = dict(rule["detection"])
        condition = detection.pop("condition")
        self.conditions = condition if isinstance(condition, list) else [condition]
        self.detections = detection

    def matches(self, record: dict[str, Any]) -> bool:
        return any(self._condition(c, record) for c in self.conditions)

    # conditions
    def _condition(self, text: str, record: dict[str, Any]) -> bool:
        toks = re.findall(r"\(|\)|[^\s()]+", text)
        pos = 0

        def peek() -> str | None:
            return toks[pos] if pos < len(toks) else None

        def take() -> str:
            nonlocal pos
            pos += 1
            return toks[pos - 1]

        def or_expr() -> bool:
            value = and_expr()
            while peek() == "or":
                take()
                right = and_expr()
                value = value or right
            return value

        def and_expr() -> bool:
            value = not_expr()
            while peek() == "and":
                take()
                right = not_expr()
                value = value and right
            return value

        def not_expr() -> bool:
            if peek() == "not":
                take()
                return not not_expr()
            return atom()

        def atom() -> bool:
            tok = take()
            if tok == "(":
                value = or_expr()
                assert take() == ")"
                return value
            if tok in ("1", "any", "all") and peek() == "of":
                take()
                names = self._names(take())
                results = [self._detection(self.detections[n], record) for n in names]
                return all(results) if tok == "all" else any(results)
            return self._detection(self.detections[tok], record)

        result = or_expr()
        assert pos == len(toks), text
        return result

    def _names(self, pattern: str) -> list[str]:
        if pattern == "them":
            return [n for n in self.detections if not n.startswith("_")]
        pat = tokens(pattern)
        return [
            n
            for n in self.detections
            if wildcard_match(pat, n) and (pattern.startswith("_") or not n.startswith("_"))
        ]

    def _detection(self, definition: Any, record: dict[str, Any]) -> bool:
        if isinstance(definition, dict):
            return all(self._item(k, v, record) for k, v in definition.items())
        if isinstance(definition, list):
            if all(not isinstance(x, dict | list) for x in definition):
                return any(self._keyword(x, [], record) for x in definition)
            return any(self._detection(x, record) for x in definition)
        return self._keyword(definition, [], record)

    def _item(self, key: str, value: Any, record: dict[str, Any]) -> bool:
        field, *mods = key.split("|")
        values = value if isinstance(value, list) else [value]
        combine = all if "all" in mods else any
        if field == "":
            result = combine(self._keyword(v, mods, record) for v in values)
        else:
            result = combine(self._value(field, mods, v, record) for v in values)
        return not result if "neq" in mods else result

    def _keyword(self, value: Any, mods: list[str], record: dict[str, Any]) -> bool:
        pats = string_patterns(value, [*mods, "contains"], self.placeholders)
        cased = "cased" in mods
        return any(self._text_match(pats, t, cased) for t in texts(record))

    @staticmethod
    def _text_match(patterns: list[Any], text: str, cased: bool) -> bool:
        if cased:
            return any(wildcard_match(p, text) for p in patterns)
        low = text.lower()
        return any(wildcard_match(_lower_tokens(p), low) for p in patterns)

    def _value(self, field: str, mods: list[str], v: Any, record: dict[str, Any]) -> bool:
        actual = resolve(record, field)
        if "exists" in mods:
            return (actual is not ABSENT) == bool(v)
        if v is None:
            return actual is ABSENT or actual is None or actual == []
        if "fieldref" in mods:
            other = resolve(record, v)
            rights = [t.lower() for t in texts(other)]
            for left in (t.lower() for t in texts(actual)):
                for right in rights:
                    if "contains" in mods and right in left:
                        return True
                    if "startswith" in mods and "contains" not in mods and left.startswith(right):
                        return True
                    if "endswith" in mods and "contains" not in mods and left.endswith(right):
                        return True
                    if not {"contains", "startswith", "endswith"} & set(mods) and left == right:
                        return True
            return False
        if "re" in mods:
            flags = (re.I if "i" in mods else 0) | (re.M if "m" in mods else 0)
            flags |= re.S if "s" in mods else 0
            rx = re.compile(v, flags)
            return any(rx.search(t) for t in texts(actual))
        if "cidr" in mods:
            net = ipaddress.ip_network(v, strict=False)
            for t in texts(actual):
                try:
                    if ipaddress.ip_address(t.strip()) in net:
                        return True
                except ValueError:
                    pass
            return False
        if actual is ABSENT or actual is None:
            return False
        part = next((m for m in mods if m in TIME_PARTS), None)
        op = next((m for m in mods if m in COMPARE), None)
        if part is not None or op is not None:
            for leaf in leaves(actual):
                n = time_part(leaf, part) if part else as_number(leaf)
                if n is not None and (COMPARE[op](n, v) if op else n == v):
                    return True
            return False
        if isinstance(v, bool):
            want = "true" if v else "false"
            return any(
                leaf is v or (isinstance(leaf, str) and leaf.lower() == want)
                for leaf in leaves(actual)
            )
        if isinstance(v, int | float) and not [m for m in mods if m not in {"neq", "all"}]:
            return any(
                (isinstance(leaf, int | float) and not isinstance(leaf, bool) and leaf == v)
                or (isinstance(leaf, str) and leaf == str(v))
                for leaf in leaves(actual)
            )
        pats = string_patterns(v, mods, self.placeholders)
        return any(self._text_match(pats, t, "cased" in mods) for t in texts(actual))
