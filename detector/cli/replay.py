"""``detector replay``: rules over historical files, alerts to a table and JSON lines."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import sys
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from detector.app.ingest import Ingestor
from detector.app.policy import effective_rules
from detector.app.replay import ReorderBound, Replay, ReplayResult
from detector.app.rulepack import rule_loader
from detector.app.settings import load_settings
from detector.cli.options import SourceOption
from detector.detect import RuleSet
from detector.errors import ConfigError, RuleLoadError
from detector.models import Alert
from detector.sinks.suppression import StreamingFold

err = Console(stderr=True)
# Piped output (CI logs, files) gets a width that fits rule titles instead of rich's 80.
out = Console() if Console().is_terminal else Console(width=140)


def replay_command(
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True, help="Log files or directories (JSON lines, S3-delivery JSON, .gz)."
        ),
    ],
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", "-r", exists=True, help="Rule file or directory (repeatable)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write alerts as JSON lines (ECS documents) here."),
    ] = None,
    source: SourceOption = "auto",
    max_rows: Annotated[
        int, typer.Option(help="Alerts shown in the table (all go to --output).")
    ] = 50,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="DETECTOR_CONFIG",
            help="Settings file (YAML); its rules section (paths, placeholders, exceptions, "
            "policy) applies as in 'detector run'. DETECTOR_RULES__* variables apply too.",
        ),
    ] = None,
) -> None:
    """Replay rules over files in event-time order with in-memory state (no services)."""
    try:
        settings = load_settings(config)
        ruleset = rule_loader(settings.rules)(rules or settings.rules.paths)
        for error in ruleset.errors:
            err.print(f"[red]rejected[/red] {error}", markup=True, highlight=False)
        for note in ruleset.disabled:
            err.print(f"[yellow]disabled[/yellow] {note}", markup=True, highlight=False)
        effective, warnings = effective_rules(settings.rules, ruleset)
    except (ConfigError, RuleLoadError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    for warning in warnings:
        err.print(f"[yellow]warning[/yellow] {warning}", markup=True, highlight=False)
    ruleset = effective.ruleset
    bound = ReorderBound(settings.replay.reorder_seconds, settings.replay.reorder_events)
    run = Replay(paths, ruleset, Ingestor(source=source), bound)
    folding = StreamingFold(run.holds)
    earliest = _Earliest(max_rows)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        _progress() as progress,
        output.open("wb") if output is not None else contextlib.nullcontext() as fh,
    ):
        task = progress.add_task("replaying", total=None, rate="")

        def on_progress(done: int, total: int, events: int) -> None:
            rate = events / max(time.monotonic() - started, 1e-3)
            progress.update(task, completed=done, total=total or None, rate=f"{rate:,.0f} ev/s")

        for step in run.steps(on_progress):
            earliest.offer(step.alerts)
            for alert in step.alerts:
                folding.add(alert)
            # As the search sinks store them: a suppressed group is one document.
            docs = folding.release(step.watermark)
            if fh is not None:
                fh.writelines(orjson.dumps(doc) + b"\n" for doc in docs)
    result = run.result
    out.print(_alerts_table(earliest.alerts(), result.alert_count, max_rows))
    out.print(_rules_table(result))
    out.print(_summary_table(result, ruleset, output, folding))
    if ruleset.errors and not ruleset.rules:
        raise typer.Exit(2)


def _progress() -> Progress:
    """The progress bar on stderr (a terminal only): bytes, events/s, elapsed, ETA."""
    return Progress(
        TextColumn("replaying"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


class _Earliest:
    """The ``size`` earliest alerts (time, then the order raised), for the table."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._heap: list[tuple[float, int, Alert]] = []
        self._seq = itertools.count()

    def offer(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            # a max-heap of the kept ones by negated key: the latest is dropped first
            item = (-alert.timestamp.timestamp(), -next(self._seq), alert)
            if len(self._heap) < self.size:
                heapq.heappush(self._heap, item)
            elif self.size and item > self._heap[0]:
                heapq.heapreplace(self._heap, item)

    def alerts(self) -> list[Alert]:
        return [a for _, _, a in sorted(self._heap, reverse=True)]


def _alerts_table(alerts: list[Alert], total: int, max_rows: int) -> Table:
    table = Table(title=f"Alerts ({total})", title_justify="left", expand=False)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("rule", min_width=36, overflow="fold")
    table.add_column("who", overflow="fold")
    table.add_column("from", no_wrap=True)
    for alert in alerts[:max_rows]:
        first = alert.events[0] if alert.events else {}
        table.add_row(
            alert.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            alert.rule.level,
            alert.rule.title,
            str(first.get("user", {}).get("name", "")),
            str(first.get("source", {}).get("ip") or first.get("source", {}).get("address", "")),
        )
    if total > max_rows:
        table.caption = f"{total - max_rows} more alert(s) not shown"
    return table


def _rules_table(result: ReplayResult) -> Table:
    table = Table(title="Rules fired", title_justify="left")
    table.add_column("rule")
    table.add_column("level")
    table.add_column("alerts", justify="right")
    for (_, title, level), count in result.alerts_by_rule().most_common():
        table.add_row(title, level, str(count))
    return table


def _summary_table(
    result: ReplayResult, ruleset: RuleSet, output: Path | None, folding: StreamingFold
) -> Table:
    table = Table(title="Summary", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("records read", str(result.records))
    table.add_row("events", str(result.events))
    table.add_row("rules loaded", str(len(ruleset.rules) + len(ruleset.correlations)))
    table.add_row("rules rejected", str(ruleset.rejected))
    table.add_row("dead letters", str(result.dead_letter_count))
    table.add_row("late events (beyond the reorder bound)", str(result.late_events))
    table.add_row("too-late events", str(result.too_late_events))
    table.add_row("state evictions", str(result.evictions))
    table.add_row("rules fired", str(len(result.alerts_by_rule())))
    table.add_row("alerts", str(result.alert_count))
    table.add_row("alert documents", str(folding.documents))
    if folding.late_alerts:
        table.add_row("alerts after their group was written (late)", str(folding.late_alerts))
    if output is not None:
        table.caption = f"alerts written to {output}"
    if result.dead_letter_reasons:
        reasons = sorted(result.dead_letter_reasons)
        print(f"dead letters: {', '.join(reasons)}", file=sys.stderr)
    return table
