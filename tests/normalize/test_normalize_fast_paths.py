"""The shortcuts of the CloudTrail hot path give the same answers as the careful route."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from ecs_helpers import dotted, fixture
from hypothesis import given
from hypothesis import strategies as st

from detector.errors import NormalizeError
from detector.normalize import normalize_cloudtrail
from detector.normalize.fields import is_ip

#: Keys the hot path reads by subscript, falling back to get() when one is absent
#: (``eventID`` too, but without it the id is a hash of the record, which differs).
USUAL_KEYS = (
    "eventName",
    "eventSource",
    "sourceIPAddress",
    "userAgent",
    "awsRegion",
    "recipientAccountId",
    "eventType",
    "eventTime",
    "userIdentity",
    "requestParameters",
)


def _reference_is_ip(value: str) -> bool:
    """``ipaddress``'s answer, less what an ``ip`` field refuses (a zone index)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return getattr(address, "scope_id", None) is None


@pytest.mark.parametrize(
    "value",
    [
        "10.20.30.40",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3",
        "1.2.3.4.5",
        "1..3.4",
        " 1.2.3.4",
        "1.2.3.4 ",
        "1.2.3.4\n",
        "1.2\x00.3.4",
        "\u0661.2.3.4",
        "1.2.3.\u0664",
        "\ud800.1.2.3",
        "",
        "ecr.amazonaws.com",
        "AWS Internal",
        "::1",
        "2001:db8::7",
        "::ffff:1.2.3.4",
        "fe80::1%eth0",
        "2001:db8::zz",
    ],
)
def test_is_ip_agrees_with_ipaddress_on_edge_cases(value: str) -> None:
    """Leading zeros, short forms, padding, NUL, non-ASCII digits: as ``ipaddress`` decides;
    a zone index (``fe80::1%eth0``) is no IP for an ``ip`` field."""
    assert is_ip(value) == _reference_is_ip(value)


@given(st.text(alphabet="0123456789.:abf %\x00\u0665", max_size=24))
def test_is_ip_agrees_with_ipaddress_on_generated_text(value: str) -> None:
    """Any address-like text is an IP for ``is_ip`` exactly when it is for ``ipaddress``."""
    assert is_ip(value) == _reference_is_ip(value)


@given(st.ip_addresses())
def test_is_ip_accepts_every_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    """Every IPv4 and IPv6 address in its canonical text form is an IP."""
    assert is_ip(str(address))


def _ecs_or_error(record: dict[str, Any]) -> object:
    try:
        return normalize_cloudtrail(record).ecs
    except NormalizeError as exc:
        return (exc.reason, exc.detail)


@pytest.mark.parametrize("key", USUAL_KEYS)
@pytest.mark.parametrize("name", ["sts_assumerole", "iam_createaccesskey", "ecr_putimage_push"])
def test_absent_key_maps_like_a_null_one(name: str, key: str) -> None:
    """Dropping a key CloudTrail always sends gives the same ECS (or error) as setting it null."""
    record = fixture("cloudtrail", name)
    absent = {k: v for k, v in record.items() if k != key}
    null = {**record, key: None}
    assert _ecs_or_error(absent) == _ecs_or_error(null)


@pytest.mark.parametrize(
    ("key", "value", "path"),
    [
        ("userAgent", 7, "user_agent.original"),
        ("eventID", 12345, "event.id"),
        ("errorCode", "AccessDenied", "error.code"),
        ("errorMessage", 3.5, "error.message"),
        ("recipientAccountId", 111122223333, "cloud.account.id"),
    ],
)
def test_untypical_values_take_the_careful_route(key: str, value: object, path: str) -> None:
    """Numbers are rendered as text, error fields map, when a record leaves the fast path."""
    record = {**fixture("cloudtrail", "sts_assumerole"), key: value}
    assert dotted(normalize_cloudtrail(record).ecs, path) == str(value)
