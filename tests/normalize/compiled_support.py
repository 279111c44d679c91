"""Cases run through both builds of decode + normalize, compiled and interpreted.

Imported by ``test_compiled_build.py`` in the test process (whatever build is installed)
and run as a script in a child process that imports the sources (interpreted), so the
two answers can be compared line by line. Usage: ``python compiled_support.py CASES``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import orjson

from detector.decode import DecodeLimits, decode_json
from detector.errors import DecodeError
from detector.normalize import Normalizer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "records"

#: Values that stand in for a field to test wrong types, empties and hostile text.
ODD_VALUES: list[Any] = [
    None,
    "",
    0,
    -1.5,
    True,
    [],
    {},
    ["x", 1],
    {"nested": {"deeper": [1, 2]}},
    "x" * 5000,
    "\u202e\u0000 <script>",
    "2024-13-45T99:99:99Z",
    "1.2.3.4",
    "::1",
    "host.example",
    2**63 - 1,
    1e300,
]


def fixture_records() -> list[Any]:
    """Every fixture document, as decoded JSON."""
    return [orjson.loads(path.read_bytes()) for path in sorted(FIXTURES.rglob("*.json"))]


def _mutations(doc: Any, rng: random.Random) -> list[Any]:
    """Copies of ``doc`` with one field (top level or one level down) set to an odd value."""
    if type(doc) is not dict:
        return []
    out: list[Any] = []
    for key, value in doc.items():
        for odd in rng.sample(ODD_VALUES, 4):
            out.append({**doc, key: odd})
        if type(value) is dict and value:
            inner = rng.choice(sorted(value))
            out.append({**doc, key: {**value, inner: rng.choice(ODD_VALUES)}})
        out.append({k: v for k, v in doc.items() if k != key})
    return out


def cases(seed: int = 20261128) -> list[bytes]:
    """Encoded records: fixtures, their mutations, and broken encodings."""
    rng = random.Random(seed)
    out: list[bytes] = []
    for doc in fixture_records():
        out.append(orjson.dumps(doc))
        for records in (doc.get("Records"), doc.get("events")) if type(doc) is dict else ():
            if type(records) is list:
                out.extend(orjson.dumps(r) for r in records)
        out.extend(orjson.dumps(m) for m in _mutations(doc, rng))
    blob = out[0]
    out += [
        b"",
        blob[: len(blob) // 2],
        blob.replace(b'"', b"\xff", 1),
        b'{"a": "\\ud800"}',
        b"[" * 70 + b"]" * 70,
        b'{"eventName": "x"}' * 2,
        b"[]",
        b"42",
    ]
    return out


def answers(blobs: list[bytes]) -> list[str]:
    """One canonical line per case: its events and errors under each of three sources."""
    limits = DecodeLimits(max_bytes=64 * 1024)
    normalizers = [Normalizer(source) for source in ("auto", "cloudtrail", "registry")]
    lines: list[str] = []
    for blob in blobs:
        try:
            doc = decode_json(blob, limits)
        except DecodeError as exc:
            lines.append(f"decode {exc.reason}: {exc.detail}")
            continue
        answer = []
        for normalizer in normalizers:
            events, errors = normalizer.normalize(doc)
            answer.append(
                [
                    [[e.id, e.timestamp, e.family, e.logsource.service, e.ecs] for e in events],
                    [[x.reason, x.detail] for x in errors],
                ]
            )
        lines.append(orjson.dumps(answer, option=orjson.OPT_SORT_KEYS).decode())
    return lines


if __name__ == "__main__":
    import detector.normalize

    blobs = [bytes.fromhex(h) for h in orjson.loads(Path(sys.argv[1]).read_bytes())]
    reply = {"compiled": detector.normalize.COMPILED, "lines": answers(blobs)}
    sys.stdout.write(orjson.dumps(reply).decode())
