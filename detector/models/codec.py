"""Codec of the internal matches topic: routed matches and watermark heartbeats.

Four layouts, all plain JSON (orjson), never pickle (events hold attacker-controlled
values). Values JSON cannot carry are written as text (bytes from Avro records as base64,
non-text keys as text): the engines' field resolution reads text, and one odd value must
never stop the detect stage.

- **Version 4** (what the detect stage writes): one record per matches partition and
  batch, a :class:`MatchBatch`: ``b"DMB4"`` and one zstd frame (level 1, stating its
  inflated size) of the length of a JSON head (4 bytes, big-endian), the head, then the
  ECS documents of the batch's events, each once, back to back. The head holds the
  lengths of those documents, the batch's routed matches of that partition, each slimmed
  to what its stateful rule reads (the rule id instead of the rule's facts; the native
  record only when the rule's alert embeds it, else just the fields it keys or counts
  by; its ECS document as a position among the documents; the values the rule looks up
  there as ``[{name: value}, [names the document lacks]]``), and the member's watermark
  heartbeat, which then needs no record of its own. The documents decode as
  :class:`SerializedDocument`: most are evidence no alert ever embeds, and stay unparsed
  (also through checkpoints). A record inflating beyond :data:`MAX_INFLATED_BYTES` is
  refused before it is inflated.
- **Version 3** (still decoded): as version 4, zlib (level 1) compressed, the looked-up
  values as ``[name, value]`` pairs (``[name]`` for a field the document lacks).
- **Version 2**: as version 3 without the documents section, each match embedding its
  ECS document in the JSON (still decoded).
- **Version 1**: one JSON record per routed match (older detect stages: still decoded,
  so records left in the topic by an upgrade are applied) or per heartbeat (a heartbeat
  to a partition that got no batch record).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from itertools import chain, repeat
from typing import Any, NamedTuple, cast

import orjson

from detector.models.alerts import RuleInfo
from detector.models.compression import deflate, inflate, inflate_zlib
from detector.models.events import Event, LogSource
from detector.models.matches import Match
from detector.models.records import Origin
from detector.models.serialized import ABSENT, SerializedDocument

#: Version of the one-record-per-match layout (still decoded).
CODEC_VERSION = 1
#: First bytes of a version 4 record (a batch of matches); a JSON record starts with ``{``.
BATCH_MAGIC = b"DMB4"
#: First bytes of a version 3 record (still decoded).
BATCH_MAGIC_V3 = b"DMB3"
#: First bytes of a version 2 record (still decoded).
BATCH_MAGIC_V2 = b"DMB2"
#: A batch record inflating beyond this is refused (a decompression bomb). The detect
#: stage writes at most :data:`BATCH_BYTES` and one match (an event's two documents,
#: each below the source record limit) per record.
MAX_INFLATED_BYTES = 64 * 1024 * 1024
#: A batch record's JSON is cut into several records above this size (before compression).
BATCH_BYTES = 1024 * 1024


class RoutedMatch(NamedTuple):
    """A match addressed to one stateful rule: ``target`` (a correlation unit or a
    first-seen rule id) and ``key`` (its group key as text, the Kafka record key).

    ``seq`` numbers the routed matches of one source record (0, 1, ...), so that together
    with the event's origin offset it orders every routed match of a source partition:
    the correlate stage uses it to drop matches re-sent after a detect-stage restart.

    ``raw`` holds the native values the target reads (its group-by and value fields), by
    field name; ``None`` stands for the whole native record (a first-seen alert embeds
    it). A batch record carries ``raw`` in place of the native record.

    ``ecs_values`` holds what a field look-up gives in the ECS document for each field
    the target may read there (:data:`~detector.models.serialized.ABSENT` included); a
    batch record carries them, so the correlate stage keeps the document unparsed.
    ``raw_values`` holds the same for the whole native record (when ``raw`` is ``None``).

    Immutable; a named tuple, as :class:`~detector.models.matches.Match`, because the
    correlate stage builds one per decoded match.
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
    """A batch record: routed matches of one partition, in routing order, and the
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
    try:
        return orjson.dumps(value, default=_default)
    except orjson.JSONEncodeError:
        # a key that is not text (rare): the option that writes it as text costs half as
        # much again on every document, so only here
        return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


class _Documents:
    """The ECS documents of one batch record, each once, and where each sits."""

    __slots__ = ("blobs", "cache", "index", "size")

    def __init__(self, cache: dict[int, Any]) -> None:
        self.cache = cache
        self.index: dict[int, int] = {}
        self.blobs: list[bytes] = []
        self.size = 0  # bytes of the blobs

    def position(self, ecs: Mapping[str, Any]) -> int:
        """The position of ``ecs`` among this record's documents (serialized once per
        batch, added once per record)."""
        key = id(ecs)
        at = self.index.get(key)
        if at is None:
            data = self.cache.get(key)
            if data is None:
                if type(ecs) is SerializedDocument:
                    data = ecs.data
                else:
                    data = self.cache[key] = _json(ecs)
            at = self.index[key] = len(self.blobs)
            self.blobs.append(data)
            self.size += len(data)
        return at

    def drop(self, count: int) -> None:
        """Forget every document from position ``count`` on."""
        del self.blobs[count:]
        self.index = {k: at for k, at in self.index.items() if at < count}
        self.size = sum(map(len, self.blobs))


def _looked_up(values: Mapping[str, Any] | None) -> list[Any] | None:
    """Looked-up values as ``[{name: value}, [names the document lacks]]``."""
    if values is None:
        return None
    found: dict[str, Any] = {}
    absent: list[str] = []
    for name, value in values.items():
        if value is ABSENT:
            absent.append(name)
        else:
            found[name] = value
    return [found, absent]


def _row(routed: RoutedMatch, documents: _Documents) -> list[Any]:
    """One match of a batch record: ``[target, key, seq, rule id, selections, event id,
    time, family, product, service, ecs position, raw, topic, partition, offset, path,
    line, ecs values, native look-ups]``: raw the native values the rule reads or the
    position of the whole native record among the documents; the values as
    ``[{name: value}, [names the document lacks]]``.
    """
    # named tuples all the way down: unpacked, not read a field at a time
    target, key, match, seq, slim, ecs_values, raw_values = routed
    rule, event, selections = match
    eid, timestamp, family, logsource, ecs, native, origin, _ = event
    raw = documents.position(native) if slim is None else slim
    return [
        target,
        key,
        seq,
        rule.id,
        selections,
        eid,
        timestamp,
        family,
        logsource.product,
        logsource.service,
        documents.position(ecs),
        raw,
        *origin,
        _looked_up(ecs_values),
        _looked_up(raw_values),
    ]


def _cut(
    matches: Sequence[RoutedMatch], cache: dict[int, Any], max_bytes: int
) -> list[tuple[bytes, _Documents]]:
    """``matches`` cut into records of at most ``max_bytes`` of JSON (a match above it
    gets a record of its own): each record's matches, comma-separated, and documents."""
    chunks: list[tuple[list[bytes], _Documents]] = [([], _Documents(cache))]
    size = 0
    for routed in matches:
        items, docs = chunks[-1]
        count, before = len(docs.blobs), docs.size
        item = _json(_row(routed, docs))
        if items and size + len(item) + docs.size - before > max_bytes:
            docs.drop(count)  # this match starts the next record
            before = 0
            chunks.append(([], _Documents(cache)))
            items, docs = chunks[-1]
            item = _json(_row(routed, docs))
            size = 0
        items.append(item)
        size += len(item) + 1 + docs.size - before
    return [(b",".join(items), docs) for items, docs in chunks]


def encode_batch(
    matches: Sequence[RoutedMatch],
    heartbeat: Watermark | None = None,
    *,
    max_bytes: int = BATCH_BYTES,
    documents: dict[int, Any] | None = None,
) -> list[bytes]:
    """Version 4 record values holding ``matches`` in order (at least one value; several
    when the JSON exceeds ``max_bytes``); the last one carries ``heartbeat``.

    ``documents`` (empty at first) lets calls for the matches of one batch share the
    serialized documents of their events; it must not outlive those events.
    """
    cache = {} if documents is None else documents
    whole = _Documents(cache)
    items = _json([_row(routed, whole) for routed in matches])[1:-1]  # one call: the usual
    if len(items) + whole.size <= max_bytes or len(matches) < 2:
        chunks = [(items, whole)]
    else:
        chunks = _cut(matches, cache, max_bytes)
    values = []
    for i, (items, docs) in enumerate(chunks):
        mark = heartbeat if i == len(chunks) - 1 and heartbeat is not None else None
        head = orjson.dumps(
            {
                "heartbeat": None if mark is None else _heartbeat_doc(mark),
                "docs": [len(b) for b in docs.blobs],
            }
        )
        head = head[:-1] + b',"matches":[' + items + b"]}"
        body = b"".join([len(head).to_bytes(4, "big"), head, *docs.blobs])
        values.append(BATCH_MAGIC + deflate(body))
    return values


@lru_cache(maxsize=4096)
def _rule(rule_id: str) -> RuleInfo:
    """The rule facts of a batched match: only its id (the engines key by it; alerts
    take the stateful rule's own facts)."""
    return RuleInfo(id=rule_id, title=rule_id)


# named tuples built from a tuple of their fields, without their Python ``__new__``
_origin = partial(tuple.__new__, Origin)
_event = partial(tuple.__new__, Event)
_match = partial(tuple.__new__, Match)
_routed = partial(tuple.__new__, RoutedMatch)
_NONE = type(None)
_TEXT: frozenset[type] = frozenset({str})
_INT: frozenset[type] = frozenset({int})
_OPTIONAL_TEXT: frozenset[type] = frozenset({str, _NONE})
_OPTIONAL_INT: frozenset[type] = frozenset({int, _NONE})
_NUMBER: frozenset[type] = frozenset({int, float})
_LIST: frozenset[type] = frozenset({list})
_OBJECT: frozenset[type] = frozenset({dict})
_OBJECT_OR_INT: frozenset[type] = frozenset({dict, int})


def _only(values: Iterable[Any], types: frozenset[type], problem: str) -> None:
    """Raise ``ValueError(problem)`` unless every value's type is one of ``types``."""
    if not set(map(type, values)) <= types:
        raise ValueError(problem)


def _within(positions: Sequence[int], count: int, what: str) -> None:
    if positions and (min(positions) < 0 or max(positions) >= count):
        raise ValueError(f"event {what} must be the position of a document of the record")


def _batch_matches(
    items: list[Any], docs: Sequence[bytes] | None, values: Callable[[Any], Any]
) -> tuple[RoutedMatch, ...]:
    """The matches of a batch record, validated a field at a time across all of them;
    ``docs`` are the record's documents (``None``: version 2, the documents are inline)
    and ``values`` decodes its looked-up values (versions 3 and 4)."""
    size = 17 if docs is None else 19
    if not all(type(item) is list and len(item) == size for item in items):
        raise ValueError(f"a batched match must be a list of {size} items")
    if not items:
        return ()
    columns = list(zip(*items, strict=True))
    targets, keys, seqs, rules, selections, ids, times, families = columns[:8]
    products, services, ecs, raws, topics, partitions, offsets, paths, lines = columns[8:17]
    _only(targets + keys, _TEXT, "target, key must be text and seq an integer")
    _only(seqs, _INT, "target, key must be text and seq an integer")
    _only(rules, _TEXT, "the rule id must be text")
    _only(selections, _LIST, "selections must be a list of text")
    _only(chain.from_iterable(selections), _TEXT, "selections must be a list of text")
    _only(times, _NUMBER, "event time must be a number")
    _only(topics + paths, _OPTIONAL_TEXT, "origin topic and path must be text")
    for name, numbers in (("partition", partitions), ("offset", offsets), ("line", lines)):
        _only(numbers, _OPTIONAL_INT, f"origin {name} must be an integer")
    if docs is None:
        _only(ecs + raws, _OBJECT, "event ecs and raw must be objects")
        documents: Sequence[Any] = ecs
        natives: Sequence[Any] = raws
    else:
        _only(ecs, _INT, "event ecs must be the position of a document of the record")
        _within(cast(Sequence[int], ecs), len(docs), "ecs")
        _only(raws, _OBJECT_OR_INT, "event raw must be an object or a position")
        _within([at for at in raws if type(at) is int], len(docs), "raw")
        documents = list(
            map(SerializedDocument, map(docs.__getitem__, ecs), map(values, columns[17]))
        )
        natives = [
            SerializedDocument(docs[at], values(found)) if type(at) is int else at
            for at, found in zip(raws, columns[18], strict=True)
        ]
    sources: dict[tuple[str, str], LogSource] = {}
    logsources = [
        sources.get(names) or sources.setdefault(names, LogSource(*names))
        for names in zip(map(str, products), map(str, services), strict=True)
    ]
    origins = map(_origin, zip(topics, partitions, offsets, paths, lines, strict=True))
    events = map(
        _event,
        zip(
            map(str, ids),
            map(float, times),
            map(str, families),
            logsources,
            documents,
            natives,
            origins,
            repeat(None),
        ),
    )
    matches = map(_match, zip(map(_rule, rules), events, map(tuple, selections), strict=True))
    fields = zip(targets, keys, matches, seqs, repeat(None), repeat(None), repeat(None))
    return tuple(map(_routed, fields))


def _pairs(pairs: Any) -> dict[str, Any] | None:
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


def _values(looked: Any) -> dict[str, Any] | None:
    """The looked-up values of a version 4 match (``[{name: value}, [absent names]]``)."""
    if looked is None:
        return None
    if type(looked) is not list or len(looked) != 2:
        raise ValueError("looked-up values must be [{name: value}, [names]]")
    found, absent = looked
    if type(found) is not dict or type(absent) is not list:
        raise ValueError("looked-up values must be [{name: value}, [names]]")
    for name in absent:
        if type(name) is not str:
            raise ValueError("looked-up values must be [{name: value}, [names]]")
        found[name] = ABSENT
    return found


def _documents(body: bytes, lengths: Any) -> list[bytes]:
    """The ECS documents of a version 3 or 4 record: ``body`` cut at ``lengths``; each must
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
    magic, data = value[: len(BATCH_MAGIC)], value[len(BATCH_MAGIC) :]
    try:
        if magic == BATCH_MAGIC:
            body = inflate(data, MAX_INFLATED_BYTES)
        else:
            body = inflate_zlib(data, MAX_INFLATED_BYTES)
    except ValueError as exc:
        raise ValueError(f"batch record does not decompress: {exc}") from exc
    framed = magic != BATCH_MAGIC_V2  # versions 3 and 4: a head, then the documents
    try:
        size = int.from_bytes(body[:4], "big") if framed else len(body)
        if framed and len(body) < 4 + size:
            raise ValueError("batch record is shorter than its head")
        doc = orjson.loads(body[4 : 4 + size] if framed else body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"batch record holds invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("matches"), list):
        raise ValueError("batch record must be an object with a list of matches")
    docs = _documents(body[4 + size :], doc.get("docs")) if framed else None
    try:
        values = _values if magic == BATCH_MAGIC else _pairs
        matches = _batch_matches(doc["matches"], docs, values)
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


_BATCH_MAGICS = frozenset({BATCH_MAGIC, BATCH_MAGIC_V3, BATCH_MAGIC_V2})


def decode_matches_record(value: bytes | None) -> RoutedMatch | Watermark | MatchBatch:
    """Decode one record of the matches topic (version 4, 3, 2 or 1); raises ``ValueError``
    when it is not one."""
    if not value:
        raise ValueError("empty record")
    if value[: len(BATCH_MAGIC)] in _BATCH_MAGICS:
        return _decode_batch(value)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != CODEC_VERSION:
        raise ValueError("not a matches-topic record of version 1, 2, 3 or 4")
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
