"""Field access and value helpers shared by the family normalizers.

They raise :class:`NormalizeError` with reason ``missing_field`` or ``wrong_type`` so a
malformed record becomes a dead letter naming the offending field.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from detector.errors import NormalizeError
from detector.models import Event, LogSource, Origin

#: Event times already converted, by their source value. Hot paths read it directly
#: (``TIME_CACHE.get(value)``) to skip the call into :func:`timestamp` on a hit.
TIME_CACHE: dict[Any, tuple[float, str]] = {}
_TIME_CACHE_MAX = 16384
_TIME_KEY_CHARS = 64


def text(record: dict[str, Any], key: str) -> str | None:
    """``record[key]`` as a string; absent/null gives ``None``; numbers are rendered.

    Objects, arrays and booleans are a ``wrong_type`` error.
    """
    value = record.get(key)
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise NormalizeError("wrong_type", f"{key}: expected a string, got {type(value).__name__}")


def required_text(record: dict[str, Any], key: str) -> str:
    """``record[key]`` as a non-empty string, else ``missing_field``/``wrong_type``."""
    value = text(record, key)
    if not value:
        raise NormalizeError("missing_field", key)
    return value


def obj(record: dict[str, Any], key: str) -> dict[str, Any]:
    """``record[key]`` as an object; absent/null gives an empty dict."""
    value = record.get(key)
    if value is None:
        return {}
    if type(value) is dict:
        return value
    raise NormalizeError("wrong_type", f"{key}: expected an object, got {type(value).__name__}")


def array(record: dict[str, Any], key: str) -> list[Any]:
    """``record[key]`` as an array; absent/null gives an empty list."""
    value = record.get(key)
    if value is None:
        return []
    if type(value) is list:
        return value
    raise NormalizeError("wrong_type", f"{key}: expected an array, got {type(value).__name__}")


def flag(value: Any) -> bool | None:
    """A boolean from ``true``/``"true"``/``"Yes"`` style values; anything else ``None``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        if low in ("true", "yes"):
            return True
        if low in ("false", "no"):
            return False
    return None


def _to_iso(dt: datetime) -> str:
    iso = dt.astimezone(UTC).isoformat()
    return iso[:-6] + "Z" if iso.endswith("+00:00") else iso


def timestamp(value: Any, key: str) -> tuple[float, str]:
    """Epoch seconds and ISO 8601 UTC text of an event time.

    Accepts ISO 8601 strings (any offset, up to nanosecond fractions) and epoch
    numbers in seconds or milliseconds (values above 1e11 are milliseconds).
    Results are cached: a stream carries the same second many times.
    """
    hit = TIME_CACHE.get(value) if type(value) is str or type(value) is int else None
    if hit is not None:
        return hit
    if value is None or value == "":
        raise NormalizeError("missing_field", key)
    if isinstance(value, bool):
        raise NormalizeError("wrong_type", f"{key}: boolean is not a time")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 1e11 else float(value)
        try:
            result = (float(seconds), _to_iso(datetime.fromtimestamp(seconds, UTC)))
        except (OverflowError, OSError, ValueError):
            raise NormalizeError("invalid_time", f"{key}: {value!r} out of range") from None
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise NormalizeError("invalid_time", f"{key}: {value[:64]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:
            epoch = dt.timestamp()
        except (OverflowError, OSError, ValueError):
            raise NormalizeError("invalid_time", f"{key}: {value[:64]!r} out of range") from None
        result = (epoch, value if value.endswith("Z") else _to_iso(dt))
    else:
        raise NormalizeError("wrong_type", f"{key}: expected a time, got {type(value).__name__}")
    if len(TIME_CACHE) >= _TIME_CACHE_MAX:
        TIME_CACHE.clear()
    # Only short keys: ``fromisoformat`` takes fractions of any length, and unique huge
    # times must not fill the cache with megabytes.
    if type(value) is int or (type(value) is str and len(value) <= _TIME_KEY_CHARS):
        TIME_CACHE[value] = result
    return result


_inet_pton = socket.inet_pton
_AF_INET = socket.AF_INET


def is_ip(value: str) -> bool:
    """True if ``value`` is an IPv4 or IPv6 address (not a host name) that an ``ip`` field
    of Elasticsearch or OpenSearch indexes (no zone index).

    IPv4 goes through ``inet_pton``: strict dotted quads, as ``ipaddress`` accepts them
    (no leading zeros, no shorthand), at a fraction of the cost of ``ipaddress`` or a
    regular expression; source addresses rarely repeat, so caching would not help.
    Only values ending in a digit are tried, so host names cost no exception.
    """
    if value and value[-1] in "0123456789":
        try:
            _inet_pton(_AF_INET, value)
        except (OSError, ValueError):  # not IPv4; ValueError for NUL or surrogates
            pass
        else:
            return True
    return ":" in value and len(value) <= _IPV6_MAX_CHARS and _is_ipv6(value)


#: Longest IPv6 text (an IPv4-mapped form written out in full); longer values are not
#: parsed, which also keeps the cache below small in bytes.
_IPV6_MAX_CHARS = 45


@lru_cache(maxsize=4096)
def _is_ipv6(value: str) -> bool:
    """True for an IPv6 address an ``ip`` field accepts: a zone index (``fe80::1%eth0``)
    is refused by Elasticsearch and OpenSearch, so such a value stays in ``address``."""
    if "%" in value:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def split_host_port(addr: str) -> tuple[str, int | None]:
    """``host:port`` / ``[v6]:port`` / bare host or IP, to host and port."""
    if addr.startswith("["):
        host, _, rest = addr[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif addr.count(":") == 1:
        host, _, port = addr.partition(":")
    else:
        return addr, None
    return host, int(port) if port.isdigit() and len(port) <= 5 else None


def source_fields(address: str | None, port: int | None = None) -> dict[str, Any] | None:
    """ECS ``source`` object: ``ip`` only for IP addresses, ``address`` always."""
    if not address:
        return None
    src: dict[str, Any] = {"address": address}
    if is_ip(address):
        src["ip"] = address
    if port is not None:
        src["port"] = port
    return src


_tuple_new = tuple.__new__


def new_event(
    event_id: str,
    epoch: float,
    family: str,
    logsource: LogSource,
    ecs: dict[str, Any],
    raw: dict[str, Any],
    origin: Origin,
) -> Event:
    """An :class:`Event`, built as the tuple it is.

    ``tuple.__new__`` skips the generated ``Event.__new__`` (a Python function), which
    costs about as much again on the per-record path.
    """
    event: Event = _tuple_new(Event, (event_id, epoch, family, logsource, ecs, raw, origin, None))
    return event


def content_id(record: dict[str, Any]) -> str:
    """A stable id for records without one: hash of the canonical JSON of the record."""
    try:
        data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        raise NormalizeError("wrong_type", f"record is not JSON-serialisable: {exc}") from None
    return hashlib.sha256(data).hexdigest()[:32]


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without ``None`` entries."""
    return {k: v for k, v in values.items() if v is not None}


def unique(*values: str | None) -> list[str]:
    """Distinct non-empty values in first-seen order (for ``related.*``)."""
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def verb_type(verb: str) -> list[str]:
    """ECS ``event.type`` guessed from an API verb (``Get…`` -> access, ``Create…`` -> creation)."""
    low = verb.lower()
    for prefixes, kind in _VERBS:
        if low.startswith(prefixes):
            return [kind]
    return ["change"]


_VERBS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        (
            "get",
            "describe",
            "list",
            "batchget",
            "head",
            "lookup",
            "read",
            "search",
            "view",
            "select",
        ),
        "access",
    ),
    (
        (
            "create",
            "put",
            "run",
            "import",
            "upload",
            "complete",
            "register",
            "initiate",
            "add",
            "issue",
            "generate",
        ),
        "creation",
    ),
    (("delete", "remove", "terminate", "deregister", "destroy", "revoke", "purge"), "deletion"),
)
