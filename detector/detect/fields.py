"""Field access on event records: dotted names, nested objects, lists, and leaf values.

Sigma field names may be dotted (``userIdentity.sessionContext.sessionIssuer.type``,
``user.name``). A dotted name walks nested mappings, else is looked up as a literal
top-level key (``{"user.name": ...}``); a list met on the way is walked element by
element, so ``a.b`` over ``{"a": [{"b": 1}, {"b": 2}]}`` yields ``[1, 2]`` (the way a
search engine indexes arrays of objects).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final


class _Missing:
    """The value of a field that is absent from the record (distinct from JSON ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


#: Sentinel returned for absent fields.
MISSING: Final = _Missing()

#: Reads one field from a record; returns :data:`MISSING` when it is absent.
Getter = Callable[[Mapping[str, Any]], Any]


def getter(name: str) -> Getter:
    """A fast reader for field ``name``: a plain key, a nested path, or a literal dotted key."""
    parts = tuple(name.split("."))
    if len(parts) == 1:

        def get_plain(record: Mapping[str, Any]) -> Any:
            return record.get(name, MISSING)

        return get_plain

    def slow(record: Mapping[str, Any]) -> Any:
        value: Any = record
        for i, part in enumerate(parts):
            if value.__class__ is dict or isinstance(value, Mapping):
                value = value.get(part, MISSING)
            elif isinstance(value, list):
                value = _through_list(value, parts[i:])
                break
            else:
                value = MISSING
                break
        return record.get(name, MISSING) if value is MISSING else value

    if len(parts) == 2:
        first, second = parts

        # Events are plain dicts: test ``__class__ is dict`` (the ABC check is slow)
        # and leave lists, other mappings and literal dotted keys to ``slow``.
        def get_two(record: Mapping[str, Any]) -> Any:
            value = record.get(first, MISSING)
            if value.__class__ is dict:
                value = value.get(second, MISSING)
                return record.get(name, MISSING) if value is MISSING else value
            if value is MISSING:
                return record.get(name, MISSING)
            return slow(record)

        return get_two

    first, rest = parts[0], parts[1:]

    def get_dotted(record: Mapping[str, Any]) -> Any:
        value = record.get(first, MISSING)
        for part in rest:
            if value.__class__ is dict:
                value = value.get(part, MISSING)
            elif value is MISSING:
                break
            else:
                return slow(record)
        return record.get(name, MISSING) if value is MISSING else value

    return get_dotted


def read_expr(name: str, getter_name: str) -> str:
    """Python source reading field ``name`` from record ``r``, for generated predicates.

    Same result as ``getter(name)(r)`` (bound to ``getter_name``), with the common cases
    inlined: a plain key, or a two-part path through plain dicts.
    """
    parts = name.split(".")
    if len(parts) == 1:
        return f"r.get({name!r}, MISSING)"
    if len(parts) == 2:
        first, second = parts
        return (
            f"(x if (d := r.get({first!r}, MISSING)).__class__ is dict"
            f" and (x := d.get({second!r}, MISSING)) is not MISSING"
            f" else r.get({name!r}, MISSING) if d is MISSING or d.__class__ is dict"
            f" else {getter_name}(r))"
        )
    return f"{getter_name}(r)"


def _through_list(items: list[Any], parts: tuple[str, ...]) -> Any:
    """Values of ``parts`` under each element of ``items``, flattened; MISSING if none."""
    found: list[Any] = []
    for item in items:
        if isinstance(item, Mapping):
            value: Any = item
            for i, part in enumerate(parts):
                if isinstance(value, Mapping):
                    value = value.get(part, MISSING)
                elif isinstance(value, list):
                    value = _through_list(value, parts[i:])
                    break
                else:
                    value = MISSING
                    break
            if value is MISSING:
                continue
            if isinstance(value, list):
                found.extend(value)
            else:
                found.append(value)
        elif isinstance(item, list):
            value = _through_list(item, parts)
            if value is not MISSING:
                found.extend(value if isinstance(value, list) else [value])
    return found if found else MISSING


def leaves(value: Any) -> Iterator[Any]:
    """Scalar values under ``value``: itself, or the elements of lists and mappings, recursively."""
    if isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from leaves(item)
    else:
        yield value


def text(value: Any) -> str | None:
    """The text form a string pattern is matched against (JSON spelling of scalars)."""
    if isinstance(value, str):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    return None
