"""Helpers for the normalize tests: fixture loading and dotted ECS look-ups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from detector.models import Event
from detector.normalize import Normalizer

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "tests" / "fixtures" / "records"
SAMPLES = ROOT / "examples" / "samples"


def dotted(doc: dict[str, Any], path: str) -> Any:
    """``doc["a"]["b"]`` for ``"a.b"``; ``None`` when any level is missing."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def fixture(family: str, name: str) -> Any:
    """The decoded fixture ``tests/fixtures/records/<family>/<name>.json``."""
    return orjson.loads((RECORDS / family / f"{name}.json").read_bytes())


def normalize_fixture(family: str, name: str, source: str = "auto") -> list[Event]:
    """Events of one fixture file; fails the test if any record is rejected."""
    events, errors = Normalizer(source).normalize(fixture(family, name))
    assert not errors, errors
    assert events
    return events


def check(event: Event, expected: dict[str, Any]) -> None:
    """Every dotted ECS field in ``expected`` has exactly the expected value."""
    wrong = {
        path: (dotted(event.ecs, path), want)
        for path, want in expected.items()
        if dotted(event.ecs, path) != want
    }
    assert not wrong, f"{event.id}: (got, want) = {wrong}"
