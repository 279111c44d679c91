"""Every Sigma 2.1 value modifier and value form, each with matching and non-matching events."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import event, fires, load_one

MISSING = object()  # marker: leave the field out of the event

# (id, detection body, field value in the event (field "f"), expected)
CASES: list[tuple[str, str, Any, bool]] = [
    # plain strings: case-insensitive, whole value
    ("eq", "f: DeleteTrail", "deletetrail", True),
    ("eq-no", "f: DeleteTrail", "DeleteTrails", False),
    ("eq-missing", "f: DeleteTrail", MISSING, False),
    ("empty", "f: ''", "", True),
    ("empty-no", "f: ''", "x", False),
    # wildcards and escaping
    ("star", "f: 'Del*Trail'", "DeleteTrail", True),
    ("star-no", "f: 'Del*Trail'", "DeleteTrai", False),
    ("star-newline", "f: 'a*b'", "a\nb", True),
    ("qmark", "f: 'Del?teTrail'", "DeleteTrail", True),
    ("qmark-no", "f: 'Del?Trail'", "DeleteTrail", False),
    ("escaped-star", r"f: 'a\*b'", "a*b", True),
    ("escaped-star-no", r"f: 'a\*b'", "axxb", False),
    ("escaped-qmark", r"f: 'a\?'", "a?", True),
    ("escaped-qmark-no", r"f: 'a\?'", "ab", False),
    ("backslash-then-wildcard", r"f: 'c:\\*'", "c:\\windows", True),
    ("backslash-then-wildcard-no", r"f: 'c:\\*'", "c:windows", False),
    ("plain-backslash", r"f: 'c:\windows'", "C:\\Windows", True),
    ("regex-chars-literal", "f: 'a.b(c)'", "a.b(c)", True),
    ("regex-chars-literal-no", "f: 'a.b(c)*'", "axb(c)", False),
    # lists: values OR-ed; a list-valued field matches if any element does
    ("list-values", "f: [a, b]", "B", True),
    ("list-values-no", "f: [a, b]", "c", False),
    ("list-field", "f: b", ["a", "b"], True),
    ("list-field-no", "f: c", ["a", "b"], False),
    ("object-field", "f|contains: Suspended", {"cfg": {"Status": "Suspended"}}, True),
    ("object-field-no", "f|contains: Enabled", {"cfg": {"Status": "Suspended"}}, False),
    # contains / startswith / endswith / all
    ("contains", "f|contains: 'aws-cli'", "x AWS-CLI/2 y", True),
    ("contains-no", "f|contains: 'aws-cli'", "boto3", False),
    ("startswith", "f|startswith: Update", "updateFunction", True),
    ("startswith-no", "f|startswith: Update", "xUpdate", False),
    ("endswith", "f|endswith: '.exe'", "cmd.EXE", True),
    ("endswith-no", "f|endswith: '.exe'", "cmd.exe.txt", False),
    ("contains-star", "f|contains: '*'", "", True),
    ("contains-star-null", "f|contains: '*'", None, False),
    ("contains-all", "f|contains|all: [foo, bar]", "bar and foo", True),
    ("contains-all-no", "f|contains|all: [foo, bar]", "foo only", False),
    ("contains-all-list", "f|contains|all: [foo, bar]", ["foo1", "bar2"], True),
    # cased
    ("cased", "f|cased: Foo", "Foo", True),
    ("cased-no", "f|cased: Foo", "foo", False),
    ("cased-contains", "f|contains|cased: Foo", "xFooy", True),
    ("cased-contains-no", "f|contains|cased: Foo", "xfooy", False),
    # regular expressions (RE2, unanchored search)
    ("re", "f|re: 'ab+c'", "xxabbcxx", True),
    ("re-case", "f|re: 'ab+c'", "ABBC", False),
    ("re-anchor-no", "f|re: '^ab+c$'", "xabbc", False),
    ("re-i", "f|re|i: 'ab+c'", "ABBC", True),
    ("re-m", "f|re|m: '^b$'", "a\nb\nc", True),
    ("re-m-no", "f|re: '^b$'", "a\nb\nc", False),
    ("re-s", "f|re|s: 'a.b'", "a\nb", True),
    ("re-s-no", "f|re: 'a.b'", "a\nb", False),
    ("re-number", "f|re: '^4[0-9]{2}$'", 404, True),
    # cidr
    ("cidr4", "f|cidr: 10.0.0.0/8", "10.20.30.40", True),
    ("cidr4-no", "f|cidr: 10.0.0.0/8", "11.0.0.1", False),
    ("cidr6", "f|cidr: '2001:db8::/32'", "2001:db8:1::5", True),
    ("cidr6-no", "f|cidr: '2001:db8::/32'", "2001:db9::5", False),
    ("cidr-mixed-no", "f|cidr: 10.0.0.0/8", "::ffff:1.2.3.4", False),
    ("cidr-not-ip", "f|cidr: 10.0.0.0/8", "ec2.amazonaws.com", False),
    ("cidr-list", "f|cidr: [192.168.0.0/16, 10.0.0.0/8]", "192.168.1.1", True),
    # encodings
    ("base64", "f|base64: hello", base64.b64encode(b"hello").decode(), True),
    ("base64-no", "f|base64: hello", "hello", False),
    (
        "base64-contains",
        "f|base64|contains: hello",
        "xx" + base64.b64encode(b"hello").decode(),
        True,
    ),
    (
        "base64offset-0",
        "f|base64offset|contains: secret",
        base64.b64encode(b"secret!").decode(),
        True,
    ),
    (
        "base64offset-1",
        "f|base64offset|contains: secret",
        base64.b64encode(b"Xsecret!").decode(),
        True,
    ),
    (
        "base64offset-2",
        "f|base64offset|contains: secret",
        base64.b64encode(b"XYsecret").decode(),
        True,
    ),
    (
        "base64offset-no",
        "f|base64offset|contains: secret",
        base64.b64encode(b"public").decode(),
        False,
    ),
    ("utf16le", "f|utf16le|contains: cmd", "x" + "cmd".encode("utf-16le").decode("latin-1"), True),
    ("wide", "f|wide: cmd", "cmd".encode("utf-16le").decode("latin-1"), True),
    ("wide-no", "f|wide: cmd", "cmd", False),
    ("utf16be", "f|utf16be: cmd", "cmd".encode("utf-16be").decode("latin-1"), True),
    ("utf16be-no", "f|utf16be: cmd", "cmd".encode("utf-16le").decode("latin-1"), False),
    ("utf16", "f|utf16: cmd", "\ufeff" + "cmd".encode("utf-16le").decode("latin-1"), True),
    ("utf16-no", "f|utf16: cmd", "cmd".encode("utf-16le").decode("latin-1"), False),
    (
        "wide-base64",
        "f|wide|base64: cmd",
        base64.b64encode("cmd".encode("utf-16le")).decode(),
        True,
    ),
    ("windash-dash", "f|windash|contains: ' -exec '", "run -exec x", True),
    ("windash-slash", "f|windash|contains: ' -exec '", "run /exec x", True),
    ("windash-endash", "f|windash|contains: ' -exec '", "run \u2013exec x", True),
    ("windash-no", "f|windash|contains: ' -exec '", "run _exec x", False),
    # exists / null
    ("exists", "f|exists: true", "x", True),
    ("exists-null", "f|exists: true", None, True),
    ("exists-no", "f|exists: true", MISSING, False),
    ("not-exists", "f|exists: false", MISSING, True),
    ("not-exists-no", "f|exists: false", "", False),
    ("null-missing", "f: null", MISSING, True),
    ("null-null", "f: null", None, True),
    ("null-empty-list", "f: null", [], True),
    ("null-no", "f: null", "", False),
    # neq (negated item: also true when the field is absent)
    ("neq", "f|neq: admin", "bob", True),
    ("neq-no", "f|neq: admin", "ADMIN", False),
    ("neq-missing", "f|neq: admin", MISSING, True),
    ("neq-list", "f|neq: [a, b]", "b", False),
    ("neq-number", "f|neq: 5", 6, True),
    ("neq-number-no", "f|neq: 5", 5, False),
    # numbers, booleans, comparisons
    ("number", "f: 5", 5, True),
    ("number-string", "f: 5", "5", True),
    ("number-no", "f: 5", 6, False),
    ("number-bool-no", "f: 1", True, False),
    ("string-vs-number", "f: '5'", 5, True),
    ("bool", "f: true", True, True),
    ("bool-string", "f: true", "True", True),
    ("bool-no", "f: true", False, False),
    ("lt", "f|lt: 10", 9.5, True),
    ("lt-no", "f|lt: 10", 10, False),
    ("lte", "f|lte: 10", 10, True),
    ("lte-no", "f|lte: 10", 11, False),
    ("gt", "f|gt: 10", "11", True),
    ("gt-no", "f|gt: 10", "ten", False),
    ("gte", "f|gte: 10", 10, True),
    ("gte-no", "f|gte: 10", 9, False),
    ("gt-bool-no", "f|gt: 0", True, False),
    ("gt-list", "f|gt: 10", [1, 20], True),
    # time parts (as written, no time-zone conversion)
    ("minute", "f|minute: 15", "2024-05-06T03:15:00Z", True),
    ("minute-no", "f|minute: 16", "2024-05-06T03:15:00Z", False),
    ("hour", "f|hour: 3", "2024-05-06T03:15:00+02:00", True),
    ("hour-no", "f|hour: 1", "2024-05-06T03:15:00+02:00", False),
    ("day", "f|day: 6", "2024-05-06T03:15:00Z", True),
    ("week", "f|week: 19", "2024-05-06T03:15:00Z", True),
    ("week-no", "f|week: 18", "2024-05-06T03:15:00Z", False),
    ("month", "f|month: 5", "2024-05-06T03:15:00Z", True),
    ("year", "f|year: 2024", "2024-05-06T03:15:00Z", True),
    ("year-no", "f|year: 2023", "2024-05-06T03:15:00Z", False),
    ("hour-epoch", "f|hour: 22", 1_700_000_000, True),
    ("hour-epoch-ms", "f|hour: 22", 1_700_000_000_000, True),
    ("hour-gte", "f|hour|gte: 22", "2024-05-06T23:00:00Z", True),
    ("hour-gte-no", "f|hour|gte: 22", "2024-05-06T21:59:59Z", False),
    ("hour-not-a-time", "f|hour: 3", "yesterday", False),
]


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [pytest.param(body, value, expected, id=cid) for cid, body, value, expected in CASES],
)
def test_modifier(tmp_path: Path, body: str, value: Any, expected: bool) -> None:
    """``selection: {body}`` matches an event whose field ``f`` is ``value`` iff expected."""
    rules = load_one(tmp_path, f"selection:\n    {body}\ncondition: selection")
    raw: dict[str, Any] = {"eventName": "X"}
    if value is not MISSING:
        raw["f"] = value
    assert fires(rules, event(raw)) is expected


FIELDREF = """
selection:
    a|fieldref{mods}: b
condition: selection
"""


@pytest.mark.parametrize(
    ("mods", "a", "b", "expected"),
    [
        ("", "Bob", "bob", True),
        ("", "bob", "alice", False),
        ("", "bob", MISSING, False),
        ("", ["x", "bob"], "BOB", True),
        ("|contains", "arn:aws:iam::1:user/alice", "bob", False),
        ("|contains", "arn:aws:iam::1:user/BOB/x", "bob", True),
        ("|startswith", "bobby", "bob", True),
        ("|startswith", "xbob", "bob", False),
        ("|endswith", "arn:user/bob", "bob", True),
        ("|endswith", "bobby", "bob", False),
    ],
)
def test_fieldref(tmp_path: Path, mods: str, a: Any, b: Any, expected: bool) -> None:
    """``fieldref`` compares two fields of the same event (case-insensitively)."""
    rules = load_one(tmp_path, FIELDREF.format(mods=mods))
    raw: dict[str, Any] = {"a": a}
    if b is not MISSING:
        raw["b"] = b
    assert fires(rules, event(raw)) is expected


def test_fieldref_neq(tmp_path: Path) -> None:
    """``fieldref`` combined with ``neq`` holds when the two fields differ."""
    rules = load_one(tmp_path, "selection:\n    a|neq|fieldref: b\ncondition: selection")
    assert fires(rules, event({"a": "x", "b": "y"}))
    assert not fires(rules, event({"a": "x", "b": "X"}))


def test_expand_placeholders(tmp_path: Path) -> None:
    """``expand`` substitutes configured values (which may hold wildcards)."""
    rules = load_one(
        tmp_path,
        "selection:\n    user|expand: '%admins%'\ncondition: selection",
        placeholders={"admins": ["root", "adm*"]},
    )
    assert fires(rules, event({"user": "ROOT"}))
    assert fires(rules, event({"user": "administrator"}))
    assert not fires(rules, event({"user": "bob"}))


def test_expand_inside_value(tmp_path: Path) -> None:
    """A placeholder embedded in a longer value expands in place."""
    rules = load_one(
        tmp_path,
        "selection:\n    path|expand: 'secret/%team%/*'\ncondition: selection",
        placeholders={"team": ["red", "blue"]},
    )
    assert fires(rules, event({"path": "secret/blue/db"}))
    assert not fires(rules, event({"path": "secret/green/db"}))


def test_percent_without_expand_is_literal(tmp_path: Path) -> None:
    """Without ``expand``, ``%name%`` is a literal value."""
    rules = load_one(tmp_path, "selection:\n    user: '%admins%'\ncondition: selection")
    assert fires(rules, event({"user": "%admins%"}))
    assert not fires(rules, event({"user": "root"}))
