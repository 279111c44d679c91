"""JSON codec of the internal matches topic: routed matches and watermark heartbeats.

The detect stage produces one record per (stateful rule, group key) a match feeds; the
correlate stage decodes it back into a :class:`Match`. Plain JSON (orjson), never pickle:
events hold attacker-controlled values. Values JSON cannot carry are written as text (bytes
from Avro records as base64, non-text keys as text): the engines' field resolution reads
text, and one odd value must never stop the detect stage.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from detector.models.alerts import RuleInfo
from detector.models.events import Event, LogSource
from detector.models.matches import Match
from detector.models.records import Origin

#: Version of the record layout; a consumer rejects any other.
CODEC_VERSION = 1


@dataclass(frozen=True, slots=True)
class RoutedMatch:
    """A match addressed to one stateful rule: ``target`` (a correlation unit or a
    first-seen rule id) and ``key`` (its group key as text, the Kafka record key).

    ``seq`` numbers the routed matches of one source record (0, 1, ...), so that together
    with the event's origin offset it orders every routed match of a source partition:
    the correlate stage uses it to drop matches re-sent after a detect-stage restart.
    """

    target: str
    key: str
    match: Match
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Watermark:
    """A heartbeat of the detect member ``member``: for each source partition it owns
    (``"topic/partition"``), the newest plausible event time it routed (``None``: none
    yet) and whether that partition is idle. ``time`` is the newest of them (for logs).
    ``earliest`` holds, per source partition, the earliest plausible event time the member
    saw there (of every event, matching or not): the correlate stage anchors first-seen
    ``learn`` periods on the earliest of them. A heartbeat without it still decodes.
    """

    time: float
    member: str = ""
    sources: dict[str, tuple[float | None, bool]] = field(default_factory=dict)
    earliest: dict[str, float] = field(default_factory=dict)


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    # anything else as text: one odd value must not stop the detect stage for good
    return str(value)


def match_to_dict(match: Match) -> dict[str, Any]:
    """A JSON-ready view of ``match`` (rule facts, the whole event, selections)."""
    event = match.event
    return {
        "rule": match.rule.model_dump(mode="json"),
        "selections": list(match.selections),
        "event": {
            "id": event.id,
            "timestamp": event.timestamp,
            "family": event.family,
            "logsource": [event.logsource.product, event.logsource.service],
            "ecs": event.ecs,
            "raw": dict(event.raw),
            "origin": event.origin.as_dict(),
        },
    }


def match_from_dict(data: dict[str, Any]) -> Match:
    """The :class:`Match` of :func:`match_to_dict`; raises ``ValueError`` if malformed."""
    try:
        ev = data["event"]
        product, service = ev["logsource"]
        origin = ev.get("origin") or {}
        ecs, raw = ev["ecs"], ev["raw"]
        if not isinstance(ecs, dict) or not isinstance(raw, dict):
            raise ValueError("event ecs and raw must be objects")
        event = Event(
            id=str(ev["id"]),
            timestamp=float(ev["timestamp"]),
            family=str(ev["family"]),
            logsource=LogSource(str(product), str(service)),
            ecs=ecs,
            raw=raw,
            origin=Origin(
                topic=origin.get("topic"),
                partition=origin.get("partition"),
                offset=origin.get("offset"),
                path=origin.get("path"),
                line=origin.get("line"),
            ),
        )
        rule = RuleInfo.model_validate(data["rule"])
        selections = tuple(str(s) for s in data.get("selections", ()))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed match: {exc!r}") from exc
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"malformed match: {exc}") from exc
    return Match(rule=rule, event=event, selections=selections)


def encode_routed(routed: RoutedMatch) -> bytes:
    """The record value of a routed match."""
    return orjson.dumps(
        {
            "v": CODEC_VERSION,
            "type": "match",
            "target": routed.target,
            "key": routed.key,
            "seq": routed.seq,
            "match": match_to_dict(routed.match),
        },
        default=_default,
        option=orjson.OPT_NON_STR_KEYS,
    )


def encode_watermark(mark: Watermark) -> bytes:
    """The record value of a watermark heartbeat."""
    return orjson.dumps(
        {
            "v": CODEC_VERSION,
            "type": "watermark",
            "time": mark.time,
            "member": mark.member,
            "sources": {k: list(v) for k, v in mark.sources.items()},
            "earliest": mark.earliest,
        }
    )


def decode_matches_record(value: bytes | None) -> RoutedMatch | Watermark:
    """Decode one record of the matches topic; raises ``ValueError`` when it is not one."""
    if not value:
        raise ValueError("empty record")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != CODEC_VERSION:
        raise ValueError(f"not a version {CODEC_VERSION} matches-topic record")
    kind = doc.get("type")
    try:
        if kind == "watermark":
            return Watermark(
                time=float(doc["time"]),
                member=str(doc.get("member", "")),
                sources=_progress(doc.get("sources", {})),
                earliest=_earliest(doc.get("earliest", {})),
            )
        if kind == "match":
            target, key, seq = doc["target"], doc["key"], doc["seq"]
            if not isinstance(target, str) or not isinstance(key, str) or type(seq) is not int:
                raise ValueError("target, key must be text and seq an integer")
            return RoutedMatch(target, key, match_from_dict(doc["match"]), seq)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed {kind} record: {exc!r}") from exc
    raise ValueError(f"unknown record type {kind!r}")


def _progress(raw: Any) -> dict[str, tuple[float | None, bool]]:
    """The ``sources`` of a heartbeat; ``ValueError`` when an entry is not ``[time, idle]``."""
    if not isinstance(raw, dict):
        raise ValueError("heartbeat sources must be an object")
    sources: dict[str, tuple[float | None, bool]] = {}
    for name, entry in raw.items():
        if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], bool):
            raise ValueError(f"heartbeat source {name!r} must be [time, idle]")
        time = entry[0]
        if time is not None and (isinstance(time, bool) or not isinstance(time, int | float)):
            raise ValueError(f"heartbeat source {name!r} has a time that is not a number")
        sources[str(name)] = (None if time is None else float(time), entry[1])
    return sources


def _earliest(raw: Any) -> dict[str, float]:
    """The ``earliest`` of a heartbeat; ``ValueError`` when a time is not a number."""
    if not isinstance(raw, dict):
        raise ValueError("heartbeat earliest must be an object")
    earliest: dict[str, float] = {}
    for name, time in raw.items():
        if isinstance(time, bool) or not isinstance(time, int | float):
            raise ValueError(f"heartbeat earliest of {name!r} is not a number")
        earliest[str(name)] = float(time)
    return earliest
