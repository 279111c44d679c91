"""Helpers for detect tests: write rules to disk, build events, evaluate."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

from detector.detect import DetectionEngine, RuleSet, load_rules
from detector.models import Event, LogSource

CLOUDTRAIL = LogSource("aws", "cloudtrail")
GITHUB = LogSource("github", "audit")


def rule_text(
    detection: str,
    *,
    logsource: str = "product: aws\n    service: cloudtrail",
    rule_id: str | None = None,
    title: str = "Test rule",
    extra: str = "",
) -> str:
    """A complete Sigma rule around an indented ``detection`` body."""
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    return (
        f"title: {title}\n"
        f"id: {rule_id or uuid.uuid4()}\n"
        f"status: test\n"
        f"logsource:\n    {logsource}\n"
        f"detection:\n{body}\n"
        f"level: high\n"
        f"{extra}"
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    """Write ``text`` to ``tmp_path/name`` and return the path."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) if text.startswith("\n") else text, encoding="utf-8")
    return path


def load_one(tmp_path: Path, detection: str, **kwargs: Any) -> RuleSet:
    """Load a single rule built from ``detection``; fails if it is rejected."""
    placeholders = kwargs.pop("placeholders", None)
    path = write(tmp_path, f"rule_{uuid.uuid4().hex[:8]}.yml", rule_text(detection, **kwargs))
    rules = load_rules([path], placeholders=placeholders)
    assert not rules.errors, [str(e) for e in rules.errors]
    assert len(rules.rules) == 1
    return rules


def event(
    raw: dict[str, Any],
    *,
    ecs: dict[str, Any] | None = None,
    logsource: LogSource = CLOUDTRAIL,
    family: str = "cloudtrail",
    event_id: str = "ev-1",
    timestamp: float = 1_700_000_000.0,
) -> Event:
    """An Event with the given native record (and ECS document)."""
    return Event(
        id=event_id,
        timestamp=timestamp,
        family=family,
        logsource=logsource,
        ecs=ecs if ecs is not None else {},
        raw=raw,
    )


def fires(rules: RuleSet, ev: Event) -> bool:
    """Whether any rule of ``rules`` matches ``ev``."""
    return bool(DetectionEngine(rules).evaluate(ev))
