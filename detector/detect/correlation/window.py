"""Window contents and the measure each correlation type computes over them.

A group's state is a plain list of :class:`Entry` sorted by event time (arrival order
among equal times). An entry is a named tuple: compact, and readable by field name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from detector.detect.correlation.spec import CorrelationSpec


class Entry(NamedTuple):
    """One match held in a group's window."""

    #: Event time (epoch seconds).
    time: float
    #: Position of the referenced rule in the correlation's ``rules`` list.
    ref: int
    #: The value field's value (``value_count``: text; numeric types: a number), else None.
    value: Any
    #: The evidence ECS document the alert carries (a match's may still be serialized:
    #: a :class:`~detector.models.serialized.SerializedDocument`).
    doc: Mapping[str, Any]


def entry_time(entry: Entry) -> float:
    """Sort key of an entry (``bisect`` ``key=``)."""
    return entry.time


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def ordered_chain(window: Sequence[Entry], count: int) -> list[Entry]:
    """The earliest entries that match rule positions ``0, 1, ...`` in that order.

    Greedy earliest-first finds the longest in-order prefix of the rule list, so its
    length is the measure of ``temporal_ordered``.
    """
    chain: list[Entry] = []
    for entry in window:
        if len(chain) == count:
            break
        if entry.ref == len(chain):
            chain.append(entry)
    return chain


def measure(spec: CorrelationSpec, window: Sequence[Entry]) -> float:
    """The number the condition compares: count, distinct count, sum, average, percentile,
    or the number of referenced rules seen (in order for ``temporal_ordered``)."""
    kind = spec.type
    if kind == "event_count":
        return float(len(window))
    if kind == "value_count":
        return float(len({e.value for e in window}))
    if kind == "temporal":
        return float(len({e.ref for e in window}))
    if kind == "temporal_ordered":
        return float(len(ordered_chain(window, len(spec.refs))))
    values = [float(e.value) for e in window]
    if kind == "value_sum":
        return math.fsum(values)
    if kind == "value_avg":
        return math.fsum(values) / len(values) if values else math.nan
    # value_percentile / value_median
    return percentile(values, spec.percentile if spec.percentile is not None else 50.0)


def holds(spec: CorrelationSpec, window: Sequence[Entry]) -> tuple[bool, float]:
    """Whether the condition holds over ``window``, and the measure it was decided on."""
    if not window:
        return False, 0.0
    if spec.expression is not None:
        seen = frozenset(e.ref for e in window)
        return spec.expression(seen), float(len(seen))
    value = measure(spec, window)
    if math.isnan(value):
        return False, value
    return spec.holds(value), value
