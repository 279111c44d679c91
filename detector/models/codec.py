"""Codec of the internal matches topic: routed matches and watermark heartbeats.

Three layouts, all plain JSON (orjson), never pickle (events hold attacker-controlled
values). Values JSON cannot carry are written as text (bytes from Avro records as base64,
non-text keys as text): the engines' field resolution reads text, and one odd value must
never stop the detect stage.

- **Version 3** (what the detect stage writes): one record per matches partition and
  batch, a :class:`MatchBatch`: ``b"DMB3"`` and, zlib (level 1) compressed, the length
  of a JSON head (4 bytes, big-endian), the head, then the ECS documents of the batch's
  events, each once, back to back. The head holds the lengths of those documents, the
  batch's routed matches of that partition, each slimmed to what its stateful rule reads
  (the rule id instead of the rule's facts; the native record only when the rule's alert
  embeds it, else just the fields it keys or counts by; its ECS document as a position
  among the documents), and the member's watermark heartbeat, which then needs no record
  of its own. The documents decode as :class:`SerializedDocument`: most are evidence no
  alert ever embeds, and stay unparsed (also through checkpoints).
- **Version 2**: as version 3 without the documents section, each match embedding its
  ECS document in the JSON (still decoded).
- **Version 1**: one JSON record per routed match (older detect stages: still decoded,
  so records left in the topic by an upgrade are applied) or per heartbeat (a heartbeat
  to a partition that got no batch record).
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import orjson

from detector.models.alerts import RuleInfo
from detector.models.events import Event, LogSource
from detector.models.matches import Match
from detector.models.records import Origin
from detector.models.serialized import ABSENT, SerializedDocument

#: Version of the one-record-per-match layout (still decoded).
CODEC_VERSION = 1
#: First bytes of a version 3 record (a batch of matches); a JSON record starts with ``{``.
BATCH_MAGIC = b"DMB3"
#: First bytes of a version 2 record (still decoded).
BATCH_MAGIC_V2 = b"DMB2"
#: A batch record's JSON is cut into several records above this size (before compression).
BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RoutedMatch:
    """A match addressed to one stateful rule: ``target`` (a correlation unit or a
    first-seen rule id) and ``key`` (its group key as text, the Kafka record key).

    ``seq`` numbers the routed matches of one source record (0, 1, ...), so that together
    with the event's origin offset it orders every routed match of a source partition:
    the correlate stage uses it to drop matches re-sent after a detect-stage restart.

    ``raw`` holds the native values the target reads (its group-by and value fields), by
    field name; ``None`` stands for the whole native record (a first-seen alert embeds
    it). A version 2 record carries ``raw`` in place of the native record.

    ``ecs_values`` holds what a field look-up gives in the ECS document for each field
    the target may read there (:data:`~detector.models.serialized.ABSENT` included); a
    version 3 record carries them, so the correlate stage keeps the document unparsed.
    ``raw_values`` holds the same for the whole native record (when ``raw`` is ``None``).
    """

    target: str
    key: str
    match: Match
    seq: int = 0
    raw: Mapping[str, Any] | None = None
    ecs_values: Mapping[str, Any] | None = None
    raw_values: Mapping[str, Any] | None = None


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


@dataclass(frozen=True, slots=True)
class MatchBatch:
    """A version 2 record: routed matches of one partition, in routing order, and the
    sending member's heartbeat (applied after them), if it sent one."""

    matches: tuple[RoutedMatch, ...]
    heartbeat: Watermark | None = None


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
    return orjson.dumps({"v": CODEC_VERSION, "type": "watermark", **_heartbeat_doc(mark)})


def _heartbeat_doc(mark: Watermark) -> dict[str, Any]:
    return {
        "time": mark.time,
        "member": mark.member,
        "sources": {k: list(v) for k, v in mark.sources.items()},
        "earliest": mark.earliest,
    }


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


class _Documents:
    """The ECS documents of one batch record, each once, and where each sits."""

    __slots__ = ("blobs", "cache", "index")

    def __init__(self, cache: dict[int, Any]) -> None:
        self.cache = cache
        self.index: dict[int, int] = {}
        self.blobs: list[bytes] = []

    def position(self, ecs: Mapping[str, Any]) -> int:
        """The position of ``ecs`` among this record's documents (serialized once per
        batch, added once per record)."""
        at = self.index.get(id(ecs))
        if at is None:
            data = self.cache.get(id(ecs))
            if data is None:
                if isinstance(ecs, SerializedDocument):
                    data = ecs.data
                else:
                    data = self.cache[id(ecs)] = _json(ecs)
            at = self.index[id(ecs)] = len(self.blobs)
            self.blobs.append(data)
        return at

    def drop(self, count: int) -> None:
        """Forget every document from position ``count`` on."""
        del self.blobs[count:]
        self.index = {k: at for k, at in self.index.items() if at < count}


def _pairs(values: Mapping[str, Any] | None) -> list[list[Any]] | None:
    if values is None:
        return None
    return [[name] if value is ABSENT else [name, value] for name, value in values.items()]


def _compact(routed: RoutedMatch, documents: _Documents) -> bytes:
    """One match of a batch record: ``[target, key, seq, rule id, selections, event id,
    time, family, product, service, ecs position, raw, topic, partition, offset, path,
    line, ecs values, native look-ups]``: raw the native values the rule reads or the
    position of the whole native record among the documents; the values as
    ``[name, value]`` pairs, ``[name]`` for a field the document does not hold.
    """
    event = routed.match.event
    origin = event.origin
    raw: Any = routed.raw
    if raw is None:
        raw = documents.position(event.raw)
    return orjson.dumps(
        [
            routed.target,
            routed.key,
            routed.seq,
            routed.match.rule.id,
            routed.match.selections,
            event.id,
            event.timestamp,
            event.family,
            event.logsource.product,
            event.logsource.service,
            documents.position(event.ecs),
            raw,
            origin.topic,
            origin.partition,
            origin.offset,
            origin.path,
            origin.line,
            _pairs(routed.ecs_values),
            _pairs(routed.raw_values),
        ],
        default=_default,
        option=orjson.OPT_NON_STR_KEYS,
    )


def encode_batch(
    matches: Sequence[RoutedMatch],
    heartbeat: Watermark | None = None,
    *,
    max_bytes: int = BATCH_BYTES,
    documents: dict[int, Any] | None = None,
) -> list[bytes]:
    """Version 3 record values holding ``matches`` in order (at least one value; several
    when the JSON exceeds ``max_bytes``); the last one carries ``heartbeat``.

    ``documents`` (empty at first) lets calls for the matches of one batch share the
    serialized documents of their events; it must not outlive those events.
    """
    cache = {} if documents is None else documents
    chunks: list[tuple[list[bytes], _Documents]] = [([], _Documents(cache))]
    size = 0
    for routed in matches:
        items, docs = chunks[-1]
        before = len(docs.blobs)
        item = _compact(routed, docs)
        added = sum(len(b) for b in docs.blobs[before:])
        if items and size + len(item) + added > max_bytes:
            docs.drop(before)  # this match starts the next record
            chunks.append(([], _Documents(cache)))
            items, docs = chunks[-1]
            item = _compact(routed, docs)
            added = sum(len(b) for b in docs.blobs)
            size = 0
        items.append(item)
        size += len(item) + 1 + added
    values = []
    for i, (items, docs) in enumerate(chunks):
        mark = heartbeat if i == len(chunks) - 1 and heartbeat is not None else None
        head = orjson.dumps(
            {
                "heartbeat": None if mark is None else _heartbeat_doc(mark),
                "docs": [len(b) for b in docs.blobs],
            }
        )
        head = head[:-1] + b',"matches":[' + b",".join(items) + b"]}"
        body = b"".join([len(head).to_bytes(4, "big"), head, *docs.blobs])
        values.append(BATCH_MAGIC + zlib.compress(body, 1))
    return values


@lru_cache(maxsize=4096)
def _rule(rule_id: str) -> RuleInfo:
    """The rule facts of a version 2 match: only its id (the engines key by it; alerts
    take the stateful rule's own facts)."""
    return RuleInfo(id=rule_id, title=rule_id)


def _batch_match(item: Any, docs: Sequence[bytes] | None) -> RoutedMatch:
    """One match of a batch record; ``docs`` are a version 3 record's ECS documents
    (``None``: version 2, the document is inline)."""
    size = 17 if docs is None else 19
    if not isinstance(item, list) or len(item) != size:
        raise ValueError(f"a batched match must be a list of {size} items")
    target, key, seq, rule_id, selections, eid, ts, family, product, service = item[:10]
    ecs, raw, topic, partition, offset, path, line = item[10:17]
    if not isinstance(target, str) or not isinstance(key, str) or type(seq) is not int:
        raise ValueError("target, key must be text and seq an integer")
    if docs is not None:
        if type(ecs) is not int or not 0 <= ecs < len(docs):
            raise ValueError("event ecs must be the position of a document of the record")
        ecs = SerializedDocument(docs[ecs], _values(item[17]))
        if type(raw) is int:
            if not 0 <= raw < len(docs):
                raise ValueError("event raw must be the position of a document of the record")
            raw = SerializedDocument(docs[raw], _values(item[18]))
    elif not isinstance(ecs, dict):
        raise ValueError("event ecs and raw must be objects and the rule id text")
    if not isinstance(raw, dict | SerializedDocument) or not isinstance(rule_id, str):
        raise ValueError("event ecs and raw must be objects and the rule id text")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise ValueError("event time must be a number")
    for name, number in (("partition", partition), ("offset", offset), ("line", line)):
        if number is not None and type(number) is not int:
            raise ValueError(f"origin {name} must be an integer")
    event = Event(
        id=str(eid),
        timestamp=float(ts),
        family=str(family),
        logsource=LogSource(str(product), str(service)),
        # a SerializedDocument is a read-only mapping: only the stateful engines read it
        ecs=cast(dict[str, Any], ecs),
        raw=raw,
        origin=Origin(
            topic=None if topic is None else str(topic),
            partition=partition,
            offset=offset,
            path=None if path is None else str(path),
            line=line,
        ),
    )
    match = Match(rule=_rule(rule_id), event=event, selections=tuple(map(str, selections)))
    return RoutedMatch(target, key, match, seq)


def _values(pairs: Any) -> dict[str, Any] | None:
    """The looked-up values of a version 3 match (``[name, value]`` or ``[name]`` pairs)."""
    if pairs is None:
        return None
    if not isinstance(pairs, list):
        raise ValueError("looked-up values must be a list of [name, value] pairs")
    values: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, list) or not 1 <= len(pair) <= 2 or type(pair[0]) is not str:
            raise ValueError("looked-up values must be a list of [name, value] pairs")
        values[pair[0]] = pair[1] if len(pair) == 2 else ABSENT
    return values


def _documents(body: bytes, lengths: Any) -> list[bytes]:
    """The ECS documents of a version 3 record: ``body`` cut at ``lengths``; each must
    have the outline of a JSON object (it is parsed only when read)."""
    if not isinstance(lengths, list) or not all(type(n) is int and n >= 2 for n in lengths):
        raise ValueError("batch record document lengths must be integers of at least 2")
    if sum(lengths) != len(body):
        raise ValueError("batch record documents do not add up to their lengths")
    docs = []
    at = 0
    for n in lengths:
        data = body[at : at + n]
        if data[:1] != b"{" or data[-1:] != b"}":
            raise ValueError("batch record document is not a JSON object")
        docs.append(data)
        at += n
    return docs


def _decode_batch(value: bytes) -> MatchBatch:
    v3 = value.startswith(BATCH_MAGIC)
    try:
        body = zlib.decompress(value[len(BATCH_MAGIC) :])
        size = int.from_bytes(body[:4], "big") if v3 else len(body)
        if v3 and len(body) < 4 + size:
            raise ValueError("batch record is shorter than its head")
        doc = orjson.loads(body[4 : 4 + size] if v3 else body)
    except zlib.error as exc:
        raise ValueError(f"batch record does not decompress: {exc}") from exc
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"batch record holds invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("matches"), list):
        raise ValueError("batch record must be an object with a list of matches")
    docs = _documents(body[4 + size :], doc.get("docs")) if v3 else None
    try:
        matches = tuple(_batch_match(item, docs) for item in doc["matches"])
        mark = doc.get("heartbeat")
        heartbeat = None if mark is None else _watermark(mark)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed batch record: {exc!r}") from exc
    return MatchBatch(matches, heartbeat)


def _watermark(doc: Any) -> Watermark:
    if not isinstance(doc, dict):
        raise ValueError("a heartbeat must be an object")
    return Watermark(
        time=float(doc["time"]),
        member=str(doc.get("member", "")),
        sources=_progress(doc.get("sources", {})),
        earliest=_earliest(doc.get("earliest", {})),
    )


def decode_matches_record(value: bytes | None) -> RoutedMatch | Watermark | MatchBatch:
    """Decode one record of the matches topic (version 3, 2 or 1); raises ``ValueError`` when
    it is not one."""
    if not value:
        raise ValueError("empty record")
    if value.startswith(BATCH_MAGIC) or value.startswith(BATCH_MAGIC_V2):
        return _decode_batch(value)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != CODEC_VERSION:
        raise ValueError("not a matches-topic record of version 1, 2 or 3")
    kind = doc.get("type")
    try:
        if kind == "watermark":
            return _watermark(doc)
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
