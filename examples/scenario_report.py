"""Per-story alert report of the bundled scenario: which rules alerted on each story, and how often.

Reads the alerts that ``detector replay`` wrote (JSON lines) and the scenario's ground truth, and
prints one table per story (rule -> alerts), the expected rules that did not fire, and the alerts
that hold an event of the benign background::

    detector replay --output out/alerts.jsonl examples/scenario/logs
    python examples/scenario_report.py out/alerts.jsonl

The exit status is 1 when a story was missed or the background raised an alert, else 0.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

TRUTH = Path(__file__).parent / "scenario" / "ground_truth.json"


@dataclass
class StoryAlerts:
    """The alerts of one story: count per rule title, and its expected rules that did not fire."""

    name: str
    by_rule: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_rule.values())


@dataclass
class Report:
    """Alerts attributed to the scenario's stories, and those touching background events."""

    stories: list[StoryAlerts]
    background: Counter[str]
    total: int

    @property
    def ok(self) -> bool:
        """Every story detected by all its expected rules, and nothing on the background."""
        return not self.background and all(s.total and not s.missed for s in self.stories)


def build_report(alerts: Iterable[tuple[str, Sequence[str]]], truth: Mapping[str, Any]) -> Report:
    """Attribute each alert, given as ``(rule title, event ids)``, to the stories whose events it
    names; an alert naming any event outside every story (or none) counts as background."""
    stories = {name: set(story["event_ids"]) for name, story in truth["stories"].items()}
    attack = set().union(*stories.values())
    out = {name: StoryAlerts(name) for name in stories}
    background: Counter[str] = Counter()
    total = 0
    for title, event_ids in alerts:
        total += 1
        ids = set(event_ids)
        if not ids or ids - attack:
            background[title] += 1
        for name, story_ids in stories.items():
            if ids & story_ids:
                out[name].by_rule[title] += 1
    for name, story in truth["stories"].items():
        fired = out[name].by_rule
        out[name].missed = [rule for rule in story["expected_rules"] if rule not in fired]
    return Report(list(out.values()), background, total)


def read_alerts(path: Path) -> list[tuple[str, list[str]]]:
    """``(rule title, event ids)`` of every alert document of a replay output file."""
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            doc = orjson.loads(line)
            out.append((str(doc["rule"]["name"]), [str(i) for i in doc["event"]["reference"]]))
    return out


def format_report(report: Report) -> str:
    """The report as plain text tables, one per story."""
    lines = []
    for story in report.stories:
        state = "MISSED" if not story.total else "detected"
        lines.append(f"{story.name}: {story.total} alert(s), {len(story.by_rule)} rule(s), {state}")
        width = max((len(rule) for rule in story.by_rule), default=0)
        for rule, count in sorted(story.by_rule.items()):
            lines.append(f"  {rule:<{width}}  {count:>3}")
        for rule in story.missed:
            lines.append(f"  expected but did not fire: {rule}")
    lines.append(f"background: {sum(report.background.values())} alert(s)")
    for rule, count in sorted(report.background.items()):
        lines.append(f"  {rule}  {count}")
    detected = sum(1 for s in report.stories if s.total)
    lines.append(
        f"total: {report.total} alert(s); {detected} of {len(report.stories)} stories detected"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alerts", type=Path, help="alerts written by detector replay --output")
    parser.add_argument("--truth", type=Path, default=TRUTH, help="the scenario's ground truth")
    args = parser.parse_args(argv)
    truth = orjson.loads(args.truth.read_bytes())
    report = build_report(read_alerts(args.alerts), truth)
    print(format_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
