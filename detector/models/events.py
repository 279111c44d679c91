"""Normalized events: ECS fields plus the native record they came from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

from detector.models.records import Origin

#: Origin of events built outside a pipeline (tests, direct calls); immutable, so shared.
NO_ORIGIN = Origin()

#: A source family (DESIGN.md section 2): the one list of them.
Family = Literal["cloudtrail", "registry", "ci", "vault"]
FAMILIES: tuple[Family, ...] = get_args(Family)
#: What a topic or command may name as its source: a family, or ``auto`` (from each
#: record's shape).
SourceName = Literal["auto", Family]
SOURCES: tuple[SourceName, ...] = get_args(SourceName)


@dataclass(frozen=True, slots=True)
class LogSource:
    """The Sigma log source of an event's native record, e.g. ``aws``/``cloudtrail``.

    Native-field Sigma rules apply to events whose log source equals theirs; rules with
    ``product: ecs`` apply to every event and read the normalized ECS fields.
    """

    product: str
    service: str


class Event(NamedTuple):
    """One normalized event.

    ``ecs`` is the nested ECS document; ``raw`` the native record exactly as decoded
    (after unwrapping envelopes such as ``Records[]`` or ``events[]``), which native-field
    Sigma rules read. ``timestamp`` is the event time in epoch seconds and ``id`` a stable
    identity (the source's own event id, else a content hash), used for alert ids.

    Immutable. A named tuple rather than a frozen dataclass because one is built per
    record on the ingest hot path, where it costs a third as much
    (``bench/bench_normalize.py --breakdown``).

    A *pending* event (``complete`` set) has its ECS document still to build: most
    records match no rule, and only the detection engine reads the ECS document of an
    event that matches nothing (and only when ECS rules apply to it). Its ``ecs`` holds
    only what ingest noted (see :data:`DETECTOR_SECTION`); :func:`completed` builds the
    rest with ``complete(raw, origin)``, the normalizer that validated the record.
    """

    id: str
    timestamp: float
    family: str
    logsource: LogSource
    ecs: dict[str, Any]
    raw: Mapping[str, Any]
    origin: Origin = NO_ORIGIN
    complete: Callable[[Any, Origin], Event] | None = None


def completed(event: Event) -> Event:
    """``event`` with its whole ECS document: itself if complete, else built now, with
    what ingest noted on the pending event (the time guard's fields) kept as if it had
    noted them on the complete one."""
    build = event.complete
    if build is None:
        return event
    full = build(event.raw, event.origin)
    for key, value in event.ecs.items():
        section = full.ecs.get(key)
        if type(section) is dict and type(value) is dict:
            section.update(value)
        else:
            full.ecs[key] = value
    return full


#: ECS-side section where the pipeline notes facts about an event it ingested.
DETECTOR_SECTION = "detector"
#: Why an event's time is implausible (set by the ingest guard; absent when plausible).
TIME_IMPLAUSIBLE = "time_implausible"


def time_implausible(event: Event) -> str | None:
    """Why ingest found ``event``'s time implausible, or ``None``.

    Such an event is evaluated by single-event rules but never moves a watermark and
    never enters a correlation window or a first-seen memory (it cannot be placed in
    event time).
    """
    section = event.ecs.get(DETECTOR_SECTION)
    if isinstance(section, dict):
        reason = section.get(TIME_IMPLAUSIBLE)
        if isinstance(reason, str):
            return reason
    return None
