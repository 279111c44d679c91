"""Field look-up for group-by keys and correlation values.

A correlation reads fields from the events its referenced rules matched, with the same
naming the rules use: native names against ``Event.raw`` for source-specific rules, ECS
dotted names against ``Event.ecs`` for ``product: ecs`` rules. Each look-up tries the
preferred side first and the other second, so a native rule may still group by an ECS
name such as ``user.name``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from detector.models.serialized import ABSENT, SerializedDocument

#: Marker for "field absent" (``None`` is a legitimate JSON value).
MISSING: Any = ABSENT


def lookup(doc: Mapping[str, Any], name: str) -> Any:
    """The value of ``name`` in ``doc``: a literal key first, then a dotted path.

    Returns :data:`MISSING` when neither exists. Literal keys win because some native
    records (and flattened ECS documents) hold dotted keys verbatim.
    """
    if type(doc) is SerializedDocument:
        value = doc.fields.get(name, doc)  # the fields the detect stage looked up: no parse
        if value is not doc:
            return value
        doc = doc.parsed()
    value = doc.get(name, MISSING)
    if value is not MISSING or "." not in name:
        return value
    node: Any = doc
    for part in name.split("."):
        # plain dicts first: isinstance against the Mapping ABC is slow on the hot path
        if type(node) is dict or isinstance(node, Mapping):
            node = node.get(part, MISSING)
            if node is MISSING:
                return MISSING
        else:
            return MISSING
    return node


def resolve_field(
    raw: Mapping[str, Any], ecs: Mapping[str, Any], name: str, *, ecs_first: bool
) -> Any:
    """Resolve ``name`` against the native record and the ECS document.

    ``ecs_first`` is set for fields of ``product: ecs`` rules (and chained correlation
    alerts, whose evidence is ECS); otherwise the native record is tried first.
    """
    first, second = (ecs, raw) if ecs_first else (raw, ecs)
    value = lookup(first, name)
    if value is MISSING:
        value = lookup(second, name)
    return value


def key_text(value: Any) -> str | None:
    """A group-key component as text, or ``None`` when the value cannot key a group.

    Lists (e.g. ``related.ip``) key by their sorted, comma-joined items; mappings and
    nulls do not key a group.
    """
    if type(value) is str:
        return value
    if value is MISSING or value is None or isinstance(value, Mapping):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        parts = [key_text(v) for v in value]
        return ",".join(sorted(p for p in parts if p is not None)) or None
    return str(value)


def number(value: Any) -> float | None:
    """A numeric value for ``value_sum``/``avg``/``percentile``, or ``None``.

    Numeric strings count (many audit logs render sizes as text); booleans do not.
    """
    if isinstance(value, bool) or value is MISSING or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None
