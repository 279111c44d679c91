"""Pending events (ECS document built on demand) answer exactly as eager normalization.

For every CloudTrail record of the fixtures, the scenario and the OTRF sample, and for
each of their copies with one field (at any depth) replaced by an odd value or removed,
``Normalizer(pending=True)`` gives the same errors as ``Normalizer()``, and its events,
once :func:`completed`, are the same events (id, time, ECS document, raw record, origin).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from compiled_support import ODD_VALUES, fixture_records

from detector.errors import NormalizeError
from detector.models import Event, Origin
from detector.models.events import completed
from detector.normalize import Normalizer

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = Origin(topic="cloudtrail", partition=3, offset=42)


def cloudtrail_records() -> list[dict[str, Any]]:
    """Single CloudTrail records (envelopes opened) of the fixtures, scenario and sample."""
    docs: list[Any] = list(fixture_records())
    for path in [
        ROOT / "examples" / "scenario" / "logs" / "cloudtrail.jsonl",
        *sorted((ROOT / "examples" / "samples" / "otrf-cloudtrail").glob("*.json")),
    ]:
        lines = path.read_bytes().splitlines()
        docs += [orjson.loads(line) for line in lines[:400] if line.strip()]
    out: list[dict[str, Any]] = []
    for doc in docs:
        if type(doc) is not dict:
            continue
        if type(doc.get("Records")) is list:
            out += [r for r in doc["Records"] if type(r) is dict]
        elif type(doc.get("detail")) is dict:
            out.append(doc["detail"])
        elif "eventSource" in doc:
            out.append(doc)
    return out


def _paths(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in doc.items():
        yield (*prefix, key)
        if type(value) is dict and len(prefix) < 3:
            yield from _paths(value, (*prefix, key))


def _replaced(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``doc`` with ``path`` set to ``value`` (removed when ``value`` is ...)."""
    head, *rest = path
    out = dict(doc)
    if rest:
        out[head] = _replaced(doc[head], tuple(rest), value)
    elif value is ...:
        del out[head]
    else:
        out[head] = value
    return out


def variants() -> Iterator[dict[str, Any]]:
    """Every record, and its copies with one field odd or missing."""
    seen: set[bytes] = set()
    for record in cloudtrail_records():
        shape = orjson.dumps([record.get("eventName"), *_paths(record)])
        yield record
        if shape in seen:  # one record of each API call and shape: enough, and quick
            continue
        seen.add(shape)
        for path in _paths(record):
            for value in [*ODD_VALUES, ...]:
                yield _replaced(record, path, value)


def _answer(events: list[Event], errors: list[NormalizeError]) -> Any:
    return (
        [(e.id, e.timestamp, e.family, e.logsource, e.ecs, e.raw, e.origin) for e in events],
        [(e.reason, e.detail, e.count) for e in errors],
        [orjson.dumps(e.ecs) for e in events],  # key order too
    )


def test_pending_events_complete_to_the_eager_ones() -> None:
    """Same errors, and the same events once completed, for every variant; plainly
    well-formed records really are left pending (so the test covers that path)."""
    eager, pending = Normalizer("auto"), Normalizer("auto", pending=True)
    left_pending = 0
    count = 0
    for record in variants():
        count += 1
        want = _answer(*eager.normalize(record, ORIGIN))
        events, errors = pending.normalize(record, ORIGIN)
        left_pending += sum(e.complete is not None for e in events)
        done = [completed(e) for e in events]
        assert all(e.complete is None for e in done)
        assert _answer(done, errors) == want, record
    assert count > 5_000
    assert left_pending > 1_000


def test_notes_on_a_pending_event_are_kept_in_place() -> None:
    """What ingest notes on a pending event (the time guard's ``event.ingested`` and
    ``detector`` section) lands where it would on the complete event, in the same key
    order."""
    record = next(r for r in cloudtrail_records() if r.get("eventName") == "GetObject")
    (event,), _ = Normalizer(pending=True).normalize(record)
    assert event.complete is not None
    event.ecs["event"] = {"ingested": "2030-01-01T00:00:00+00:00"}
    event.ecs["detector"] = {"time_implausible": "in the future"}
    eager = Normalizer().normalize(record)[0][0]
    eager.ecs["event"]["ingested"] = "2030-01-01T00:00:00+00:00"
    eager.ecs["detector"] = {"time_implausible": "in the future"}
    assert orjson.dumps(completed(event).ecs) == orjson.dumps(eager.ecs)
