"""Envelope unwrapping, family detection and dispatch to the family normalizers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from detector.errors import NormalizeError
from detector.models import NO_ORIGIN, SOURCES, Event, Origin
from detector.normalize.ci import is_github, is_gitlab, normalize_ci
from detector.normalize.cloudtrail import (
    normalize_cloudtrail,
    pending_cloudtrail,
    unwrap_cloudtrail,
)
from detector.normalize.registry import is_distribution, is_harbor, normalize_registry
from detector.normalize.vault import is_vault, normalize_vault

RecordNormalizer = Callable[[dict[str, Any], Origin], Event]

NORMALIZERS: dict[str, RecordNormalizer] = {
    "cloudtrail": normalize_cloudtrail,
    "registry": normalize_registry,
    "ci": normalize_ci,
    "vault": normalize_vault,
}
#: Like NORMALIZERS, with the ECS document of plainly well-formed records left pending
#: (:func:`~detector.models.events.completed` builds it): the families whose records
#: are many and whose normalization costs most.
PENDING_NORMALIZERS: dict[str, RecordNormalizer] = {**NORMALIZERS, "cloudtrail": pending_cloudtrail}

_UNEXPECTED = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError)


def detect_family(record: dict[str, Any]) -> str:
    """The source family of one native record, from its shape alone.

    Raise :class:`NormalizeError` (``unknown_source``) if no family fits.
    """
    if "eventSource" in record and "eventName" in record:
        return "cloudtrail"
    if is_vault(record):
        return "vault"
    if is_distribution(record) or is_harbor(record):
        return "registry"
    if is_gitlab(record) or is_github(record):
        return "ci"
    raise NormalizeError("unknown_source", "record matches no known source family")


class Normalizer:
    """Turns one decoded document into events, one per native record it holds.

    ``source`` is a family name or ``auto``. Envelopes are unwrapped first (CloudTrail
    ``Records[]`` and EventBridge ``detail``, Distribution ``events[]``, top-level JSON
    arrays such as REST exports); each record then normalizes on its own, so one bad
    record of an envelope yields one error and the rest still yield events.

    With ``pending``, events of families in :data:`PENDING_NORMALIZERS` may come with
    their ECS document still to build (``Event.complete``): for a detection pipeline,
    which builds it only for events that match. Errors are the same either way.
    """

    __slots__ = ("_fixed", "_table", "source")

    def __init__(self, source: str = "auto", pending: bool = False) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
        self.source = source
        self._table = PENDING_NORMALIZERS if pending else NORMALIZERS
        self._fixed = self._table.get(source)

    def normalize(
        self, doc: Any, origin: Origin = NO_ORIGIN
    ) -> tuple[list[Event], list[NormalizeError]]:
        """Events and per-record errors of one decoded document; never raises for bad data."""
        fixed = self._fixed
        # Fast path: a single record, the common case on a topic (no envelope to open).
        if type(doc) is dict and not ("Records" in doc or "detail" in doc or "events" in doc):
            try:
                return [(fixed or self._table[detect_family(doc)])(doc, origin)], []
            except NormalizeError as exc:
                return [], [exc]
            except _UNEXPECTED as exc:
                return [], [NormalizeError("invalid_record", f"{type(exc).__name__}: {exc}")]
        events: list[Event] = []
        try:
            items = self._unwrap(doc, "", 0)
        except NormalizeError as exc:
            return events, [exc]
        if not items:
            # Nothing may vanish silently: an empty envelope is answered too.
            return events, [NormalizeError("empty_envelope", "the document holds no records")]
        bad = _BadElements()
        for location, record, family in items:
            try:
                if type(record) is not dict:
                    raise NormalizeError("wrong_type", "record: expected a JSON object")
                normalize = fixed or self._table[family or detect_family(record)]
                events.append(normalize(record, origin))
            except NormalizeError as exc:
                bad.add(exc, location)
            except _UNEXPECTED as exc:
                # A shape the normalizers did not foresee: dead-letter it rather than
                # crash the consumer, which would redeliver the same record forever.
                bad.add(NormalizeError("invalid_record", f"{type(exc).__name__}: {exc}"), location)
        return events, bad.errors(len(items))

    def _unwrap(self, doc: Any, prefix: str, level: int) -> list[tuple[str, Any, str | None]]:
        """(location, record, family known from the envelope) for each record of ``doc``."""
        if type(doc) is list:
            if level > 0:
                return [(prefix, doc, None)]
            out: list[tuple[str, Any, str | None]] = []
            for i, item in enumerate(doc):
                out.extend(self._unwrap(item, f"{prefix}[{i}]", level + 1))
            return out
        if type(doc) is not dict:
            raise NormalizeError("wrong_type", f"{prefix or 'document'}: expected a JSON object")
        if self.source in ("auto", "cloudtrail"):
            records = unwrap_cloudtrail(doc)
            if records is not None:
                return [
                    (f"{prefix}.{loc}" if prefix else loc, r, "cloudtrail") for loc, r in records
                ]
        if self.source in ("auto", "registry"):
            events = doc.get("events")
            # GitHub events may carry an ``events`` list too; an envelope has no ``action``.
            if type(events) is list and "action" not in doc:
                where = f"{prefix}.events" if prefix else "events"
                return [(f"{where}[{i}]", e, "registry") for i, e in enumerate(events)]
        return [(prefix, doc, None)]


class _BadElements:
    """The bad records of one document, summarised as one error: an envelope of 100,000
    broken records is one dead letter with a count, not 100,000 copies of the document."""

    __slots__ = ("first", "location", "reasons")

    def __init__(self) -> None:
        self.first: NormalizeError | None = None
        self.location = ""
        self.reasons: dict[str, int] = {}

    def add(self, exc: NormalizeError, location: str) -> None:
        if self.first is None:
            self.first = exc
            self.location = location
        self.reasons[exc.reason] = self.reasons.get(exc.reason, 0) + 1

    def errors(self, total: int) -> list[NormalizeError]:
        first = self.first
        if first is None:
            return []
        count = sum(self.reasons.values())
        if count == 1:
            return [_located(first, self.location)]
        reasons = ", ".join(f"{reason} x{n}" for reason, n in self.reasons.items())
        located = _located(first, self.location)
        detail = f"{count} of {total} records bad ({reasons}); first: {located.detail}"
        return [NormalizeError(first.reason, detail, count)]


def _located(exc: NormalizeError, location: str) -> NormalizeError:
    """The error with the record's place in its envelope prefixed to the detail."""
    if not location:
        return exc
    return NormalizeError(exc.reason, f"{location}: {exc.detail}" if exc.detail else location)


def normalize_record(
    record: dict[str, Any], family: str | None = None, origin: Origin = NO_ORIGIN
) -> Event:
    """One native record (no envelope) to an event; raise :class:`NormalizeError` if malformed."""
    fn = NORMALIZERS[family or detect_family(record)]
    return fn(record, origin)
