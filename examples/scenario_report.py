"""Per-story alert report of the bundled scenario: which rules alerted on each story, and how often.

Reads the alert documents that ``detector replay`` wrote (JSON lines) and the scenario's ground
truth, and prints one table per story (rule -> documents, and the alerts they hold when
suppression folded several into one), the expected rules that did not fire, and the documents
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


@dataclass(frozen=True)
class AlertDoc:
    """One alert document: its rule's title, the source event ids it names, and the number of
    alerts it holds (more than one when suppression folded a group into it)."""

    title: str
    event_ids: Sequence[str]
    alerts: int = 1


@dataclass
class StoryAlerts:
    """One story's alert documents and alerts per rule title, and its expected rules that did
    not fire."""

    name: str
    documents: Counter[str] = field(default_factory=Counter)
    alerts: Counter[str] = field(default_factory=Counter)
    missed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Alert documents of the story."""
        return sum(self.documents.values())


@dataclass
class Report:
    """Documents attributed to the scenario's stories, and those touching background events."""

    stories: list[StoryAlerts]
    background: Counter[str]
    documents: int
    alerts: int

    @property
    def ok(self) -> bool:
        """Every story detected by all its expected rules, and nothing on the background."""
        return not self.background and all(s.total and not s.missed for s in self.stories)


def build_report(docs: Iterable[AlertDoc], truth: Mapping[str, Any]) -> Report:
    """Attribute each document to the stories whose events it names; a document naming any
    event outside every story (or none) counts as background."""
    stories = {name: set(story["event_ids"]) for name, story in truth["stories"].items()}
    attack = set().union(*stories.values())
    out = {name: StoryAlerts(name) for name in stories}
    background: Counter[str] = Counter()
    documents = alerts = 0
    for doc in docs:
        documents += 1
        alerts += doc.alerts
        ids = set(doc.event_ids)
        if not ids or ids - attack:
            background[doc.title] += 1
        for name, story_ids in stories.items():
            if ids & story_ids:
                out[name].documents[doc.title] += 1
                out[name].alerts[doc.title] += doc.alerts
    for name, story in truth["stories"].items():
        fired = out[name].documents
        out[name].missed = [rule for rule in story["expected_rules"] if rule not in fired]
    return Report(list(out.values()), background, documents, alerts)


def alert_docs(documents: Iterable[Mapping[str, Any]]) -> list[AlertDoc]:
    """The :class:`AlertDoc` of each ECS alert document (as replay writes them)."""
    out = []
    for doc in documents:
        suppression = doc.get("kibana", {}).get("alert", {}).get("suppression", {})
        out.append(
            AlertDoc(
                str(doc["rule"]["name"]),
                [str(i) for i in doc["event"]["reference"]],
                1 + int(suppression.get("docs_count", 0)),
            )
        )
    return out


def read_alerts(path: Path) -> list[AlertDoc]:
    """The documents of a replay output file."""
    lines = path.read_bytes().splitlines()
    return alert_docs(orjson.loads(line) for line in lines if line.strip())


def format_report(report: Report) -> str:
    """The report as plain text tables, one per story."""
    lines = []
    for story in report.stories:
        state = "MISSED" if not story.total else "detected"
        lines.append(
            f"{story.name}: {story.total} document(s), {sum(story.alerts.values())} alert(s), "
            f"{len(story.documents)} rule(s), {state}"
        )
        width = max((len(rule) for rule in story.documents), default=0)
        for rule, count in sorted(story.documents.items()):
            folded = story.alerts[rule]
            held = f"  ({folded} alerts)" if folded != count else ""
            lines.append(f"  {rule:<{width}}  {count:>3}{held}")
        for rule in story.missed:
            lines.append(f"  expected but did not fire: {rule}")
    lines.append(f"background: {sum(report.background.values())} document(s)")
    for rule, count in sorted(report.background.items()):
        lines.append(f"  {rule}  {count}")
    detected = sum(1 for s in report.stories if s.total)
    lines.append(
        f"total: {report.documents} document(s) holding {report.alerts} alert(s); "
        f"{detected} of {len(report.stories)} stories detected"
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
