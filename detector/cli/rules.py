"""``detector rules``: validate, test, convert, explain, list Sigma rules and show coverage.

Exit codes: 0 success; 1 validation or test failures (or, for ``explain``, no match);
2 usage errors (bad option, missing path). Tables go to stdout, problems to stderr.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from detector.app.authoring import (
    DEFAULT_PIPELINES,
    DEFAULT_RULES,
    TACTICS,
    TARGETS,
    Conversion,
    RuleExplanation,
    TestReport,
    case_diff,
    case_roots,
    convert,
    coverage,
    explain_record,
    junit_xml,
    load_pipeline,
    navigator_layer,
    resolve_rule,
    rule_rows,
    run_rule_tests,
    technique_names,
    validate,
)
from detector.app.policy import effective_rules
from detector.app.rulepack import RuleLoader, placeholder_pipeline, rule_loader
from detector.app.settings import load_settings
from detector.cli.config import rules_settings
from detector.cli.options import SourceOption
from detector.detect import Explanation, RuleSet
from detector.detect.policy import EffectivePolicy
from detector.errors import ConfigError

app = typer.Typer(
    help=(
        "Author Sigma rules: validate, test, convert to Elasticsearch, explain, list, "
        "ATT&CK coverage."
    ),
    no_args_is_help=True,
    add_completion=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(StrEnum):
    """Output of ``validate`` and ``list``."""

    table = "table"
    json = "json"


class QueryFormat(StrEnum):
    """Output of ``convert`` for the query targets (``kibana`` is always NDJSON)."""

    text = "text"
    json = "json"


#: The rule files or directories a command loads.
RulePaths = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="[DIR|FILE]...",
        help="Rule files or directories (default: rules.paths of the settings).",
    ),
]


#: ``--config``: the settings whose ``rules`` section decides which rules run.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        envvar="DETECTOR_CONFIG",
        help="Settings file whose rules section (paths, placeholders, exceptions, "
        "disabled, min_level, statuses, level_overrides) decides each rule's state.",
    ),
]


def _load_with_policy(
    paths: list[Path] | None, config: Path | None
) -> tuple[RuleSet, EffectivePolicy]:
    """The rules of ``paths`` (default: the settings' ``rules.paths``) and the rule policy
    of the settings applied to them, as ``detector run`` would; warnings go to stderr."""
    try:
        settings = load_settings(config)
        targets = _existing(paths or settings.rules.paths, "DIR")
        ruleset = rule_loader(settings.rules)(targets)
        effective, warnings = effective_rules(settings.rules, ruleset)
    except ConfigError as exc:
        err.print(f"error: {escape(str(exc))}")
        raise typer.Exit(2) from None
    for warning in warnings:
        err.print(f"[yellow]warning[/yellow] {escape(str(warning))}")
    return ruleset, effective


def _usage(message: str, hint: str | None = None) -> typer.BadParameter:
    """A usage error (exit 2) with typer's formatting."""
    return typer.BadParameter(message, param_hint=hint)


def _existing(paths: list[Path], hint: str) -> list[Path]:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _usage(f"no such file or directory: {', '.join(missing)}", hint)
    return paths


def _warn_rejected(ruleset: RuleSet) -> None:
    """Rejected rules are not shown: say how many, and where to look."""
    if ruleset.errors:
        err.print(
            f"[yellow]{len(ruleset.errors)} rule(s) or file(s) rejected; "
            "run 'detector rules validate' for details[/yellow]"
        )


def _rule_pack(
    paths: list[Path] | None, config: Path | None, hint: str
) -> tuple[list[Path], RuleLoader]:
    """(rule paths, loader): ``paths`` or ``rules.paths``, loaded with ``rules.placeholders``."""
    rules = rules_settings(config)
    try:
        loader = rule_loader(rules)
    except ConfigError as exc:
        raise _usage(str(exc), "--config") from None
    return _existing(paths or rules.paths, hint), loader


def _json(data: Any) -> None:
    """JSON on stdout, unstyled (safe to pipe)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------


@app.command("validate")
def validate_command(
    paths: RulePaths = None,
    fmt: Annotated[
        Format,
        typer.Option("--format", "-f", help="table (one 'file:line: problem' row each) or json."),
    ] = Format.table,
    exceptions: Annotated[
        list[Path] | None,
        typer.Option(
            "--exceptions",
            "-e",
            help="Exception file or directory to check against the rules (repeatable).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Report everything pySigma and the engine reject, all at once, with file:line.

    Errors reject a rule (it would not run); warnings are pySigma validator findings
    that do not. With ``--exceptions``, malformed exceptions are errors, and expired ones
    or ones naming rules that are not loaded are warnings. Exit 1 when any rule, file or
    exception is rejected.
    """
    targets, load = _rule_pack(paths, config, "DIR")
    result = validate(targets, _existing(exceptions or [], "--exceptions"), load)
    if fmt is Format.json:
        _json(result.to_dict())
    else:
        # One ``file:line: severity: message`` row per problem, never wrapped: editors and
        # CI annotations pick the location up, and long paths stay intact.
        for p in result.problems:
            colour = "red" if p.severity == "error" else "yellow"
            out.print(
                f"{escape(p.location)}: [{colour}]{p.severity}[/{colour}]: {escape(p.message)}"
            )
        out.print(
            f"{result.loaded} rule(s) loaded ({result.detections} detection, "
            f"{result.correlations} correlation), {len(result.errors)} rejected, "
            f"{len(result.warnings)} warning(s)"
        )
    raise typer.Exit(0 if result.ok else 1)


# --------------------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------------------


@app.command("list")
def list_command(
    paths: RulePaths = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="table or json.")] = Format.table,
    config: ConfigOption = None,
) -> None:
    """List the loaded rules: id, title, effective level and state, log source, type, tags.

    Type is ``sigma``, ``first-seen`` or the correlation type. State is ``enabled``,
    ``building block`` (off, but a running correlation needs it) or ``disabled`` under the
    rule policy of the settings (``--config`` and ``DETECTOR_RULES__*``), with the reasons
    and the exceptions that apply. Rejected rules are not listed (their count goes to
    stderr; see ``detector rules validate``).
    """
    ruleset, effective = _load_with_policy(paths, config)
    rows = rule_rows(ruleset, effective.states)
    if fmt is Format.json:
        _json([r.to_dict() for r in rows])
    else:
        table = Table(
            "id", "title", "level", "state", "log source", "type", "tags", "why", title="Rules"
        )
        for r in rows:
            reasons = [r.why] if r.why else []
            if r.exceptions:
                reasons.append(f"exceptions: {', '.join(r.exceptions)}")
            if r.suppression:
                reasons.append(f"suppressed by {r.suppression}")
            why = "; ".join(reasons)
            table.add_row(
                r.id,
                escape(r.title),
                r.level,
                r.state,
                escape(r.logsource),
                r.type,
                escape(", ".join(r.tags)),
                escape(why),
            )
        out.print(table)
        out.print(f"{len(rows)} rule(s)")
    _warn_rejected(ruleset)


# --------------------------------------------------------------------------------------
# test
# --------------------------------------------------------------------------------------


def _print_report(report: TestReport) -> None:
    for problem in report.load_errors:
        err.print(f"[red]load error[/red] {escape(problem)}")
    if report.results:
        table = Table("result", "test file", "case", title="Rule test cases")
        for r in report.results:
            verdict = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            table.add_row(verdict, escape(r.case.file), escape(r.case.name))
        out.print(table)
    for result in report.failed:
        # Plain lines, not a table: rule names are long and must stay greppable.
        out.print(f"[red bold]FAIL[/red bold] {escape(result.case.label)}")
        for d in case_diff(result):
            out.print(
                f"  {escape(d.rule)}: expected [green]{d.expected}[/green] alert(s), "
                f"got [red]{d.actual}[/red]"
            )
            for reason in d.reasons:
                out.print(f"    [dim]- {escape(reason)}[/dim]")
        for problem in result.errors:
            out.print(f"  [red]error[/red] {escape(problem)}")
    passed = sum(r.passed for r in report.results)
    colour = "green" if report.passed else "red"
    out.print(
        f"[{colour}]{passed}/{len(report.results)} case(s) passed, "
        f"{len(report.failed)} failed, {len(report.load_errors)} load error(s)[/{colour}]"
    )


@app.command("test")
def test_command(
    target: Annotated[
        Path,
        typer.Argument(
            metavar="[DIR|FILE]",
            help=(
                "Rules directory or file (test cases from the mirrored tests tree), "
                "or a tests directory or file."
            ),
        ),
    ] = DEFAULT_RULES,
    tests: Annotated[
        Path | None,
        typer.Option(
            "--tests", "-t", help="Test cases (default: mirror of DIR, rules/ -> tests/)."
        ),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report here.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run the rule test cases and show expected versus actual alerts of failing cases.

    Every case runs its native records through normalize, detect and correlate with only
    its own rule file loaded. Exit 1 when a case fails or a rule/test file cannot load.
    """
    _existing([target], "DIR")
    try:
        rules_root, tests_root = case_roots(target, tests)
    except ValueError as exc:
        raise _usage(str(exc), "DIR") from None
    if not tests_root.exists():
        raise _usage(f"no test cases at {tests_root}", "--tests")
    if not rules_root.exists():
        raise _usage(f"no rules at {rules_root}", "DIR")
    _, load = _rule_pack([rules_root], config, "DIR")
    report = run_rule_tests(rules_root, tests_root, load)
    _print_report(report)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit_xml(report).write(junit, encoding="utf-8", xml_declaration=True)
        err.print(f"JUnit report written to {escape(str(junit))}")
    raise typer.Exit(0 if report.passed else 1)


# --------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------


def _conversion_summary(conversion: Conversion) -> None:
    for s in conversion.skipped:
        colour = "red" if s.error else "yellow"
        label = "failed" if s.error else "skipped"
        what = f"{s.title} ({s.id})" if s.id else (s.path or "")
        err.print(
            f"[{colour}]{label}[/{colour}] {escape(f'[{s.type}]')} {escape(what)}: "
            + escape(s.reason)
        )
    queries = sum(len(c.queries) for c in conversion.converted)
    err.print(
        f"{len(conversion.converted)} rule(s) converted to {conversion.target} "
        f"({queries} quer{'y' if queries == 1 else 'ies'}), "
        f"{len(conversion.skipped_correlations)} correlation(s) skipped, "
        f"{len(conversion.failed)} failed"
    )


@app.command("convert")
def convert_command(
    paths: RulePaths = None,
    *,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            "-t",
            help=(
                f"One of {', '.join(TARGETS)}; kibana gives Kibana Security rules as "
                "importable NDJSON."
            ),
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    pipelines: Annotated[
        list[Path] | None,
        typer.Option(
            "--pipeline",
            "-p",
            help=(
                "pySigma processing pipeline YAML file or directory, repeatable "
                f"(default {DEFAULT_PIPELINES} when it exists)."
            ),
        ),
    ] = None,
    index: Annotated[
        list[str] | None,
        typer.Option("--index", help="Index pattern the queries search, repeatable."),
    ] = None,
    fmt: Annotated[
        QueryFormat,
        typer.Option("--format", "-f", help="text or json (ignored for kibana: NDJSON)."),
    ] = QueryFormat.text,
    attack_data: Annotated[
        Path | None,
        typer.Option(
            "--attack-data",
            exists=True,
            dir_okay=False,
            help="MITRE ATT&CK STIX bundle for technique names in Kibana rules (offline).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Convert rules to Elasticsearch queries with pySigma's Elasticsearch backend.

    The project's processing pipelines map each log source's native field names to ECS,
    so the queries search our ECS documents. Correlations convert where the backend can
    (ES|QL, EQL); otherwise they are listed as skipped with the reason. Exit 1 when a
    rule fails to convert (skipped correlations are not failures).
    """
    rules = rules_settings(config)
    try:
        placeholders = placeholder_pipeline(rules)
    except ConfigError as exc:
        raise _usage(str(exc), "--config") from None
    targets = _existing(paths or rules.paths, "DIR")
    chosen = pipelines or ([DEFAULT_PIPELINES] if DEFAULT_PIPELINES.exists() else [])
    try:
        pipeline = placeholders + load_pipeline(chosen)
    except ValueError as exc:
        raise _usage(str(exc), "--pipeline") from None
    if not chosen:
        err.print(
            f"[yellow]no processing pipeline ({DEFAULT_PIPELINES} not found): "
            "field names are left as the rules write them[/yellow]"
        )
    if target not in TARGETS:
        raise _usage(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}", "--target")
    names = technique_names(attack_data) if attack_data is not None else None
    conversion = convert(
        targets, target, pipeline, index_names=tuple(index or ()), attack_names=names
    )
    text = conversion.render(fmt.value)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    _conversion_summary(conversion)
    raise typer.Exit(1 if conversion.failed else 0)


# --------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------


def _explanation_tree(ex: Explanation, label: str) -> Tree:
    verdict = "[green]MATCH[/green]" if ex.matched else "[red]no match[/red]"
    tree = Tree(f"{label}{escape(ex.title)} ({ex.rule_id}): {verdict}")
    if not ex.applies:
        tree.add("[yellow]the rule does not apply to this event's log source[/yellow]")
    tree.add("condition: " + escape(" | ".join(ex.condition)))
    for sel in ex.selections:
        mark = "[green]held[/green]" if sel.matched else "[red]did not hold[/red]"
        branch = tree.add(f"{escape(sel.name)}: {mark}")
        for item in sel.items:
            key = (item.field or "<keyword>") + "".join(f"|{m}" for m in item.modifiers)
            # ``explain`` renders a missing field as a bare <absent> (a string would be quoted)
            actual = repr(item.actual)
            shown = "[dim]absent[/dim]" if actual == "<absent>" else escape(actual)
            tick = "[green]✓[/green]" if item.matched else "[red]✗[/red]"
            node = branch.add(f"{tick} {escape(key)}")
            node.add(f"expected: {escape(str(list(item.values)))}")
            node.add(f"actual: {shown}")
    return tree


def _read_document(event: str) -> Any:
    if event == "-":
        text = sys.stdin.read()
    else:
        path = Path(event)
        if not path.is_file():
            raise _usage(f"{event}: no such file", "EVENT")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _usage(f"{event}: not a JSON document: {exc}", "EVENT") from None


def _print_explanation(result: RuleExplanation) -> None:
    for problem in result.errors:
        err.print(f"[red]{escape(problem)}[/red]")
    header = f"{result.title} ({result.rule_id}) [{result.type}]"
    if result.type not in ("sigma", "first-seen"):
        out.print(
            f"{escape(header)}: a correlation is stateful; explaining the detection rules it "
            "references (use 'detector rules test' for the correlation itself)"
        )
    elif result.type == "first-seen":
        out.print(
            f"{escape(header)}: a match is a candidate; it alerts only for a term not seen before"
        )
    many = result.events > 1
    per_event = max(1, len(result.explanations) // max(1, result.events))
    for i, ex in enumerate(result.explanations):
        label = f"event {i // per_event + 1}: " if many else ""
        out.print(_explanation_tree(ex, label), soft_wrap=False)


@app.command("explain")
def explain_command(
    rule: Annotated[
        str, typer.Argument(help="Rule id, name, title, or rule file path.", metavar="RULE")
    ],
    event: Annotated[
        str,
        typer.Argument(
            help="File with one native record (JSON), or '-' for stdin.", metavar="EVENT"
        ),
    ],
    rules: Annotated[
        list[Path] | None,
        typer.Option(
            "--rules", "-r", help="Rule files or directories to load (default: rules.paths)."
        ),
    ] = None,
    source: SourceOption = "auto",
    config: ConfigOption = None,
) -> None:
    """Show which selections and detection items of RULE matched EVENT, and why.

    Each item shows its field, modifiers, expected values and the event's actual value.
    Exit 0 when the rule matched, 1 when it did not, 2 on usage errors.
    """
    rule_paths, load = _rule_pack(rules, config, "--rules")
    document = _read_document(event)
    try:
        ruleset, key = resolve_rule(rule, rule_paths, load)
    except LookupError as exc:
        raise _usage(str(exc), "RULE") from None
    result = explain_record(ruleset, key, document, source)
    if not result.explanations:
        problems = "; ".join(result.errors) or "no record in the document"
        raise _usage(f"{event}: nothing to explain: {problems}", "EVENT")
    _print_explanation(result)
    raise typer.Exit(0 if result.matched else 1)


# --------------------------------------------------------------------------------------
# coverage
# --------------------------------------------------------------------------------------


@app.command("coverage")
def coverage_command(
    paths: RulePaths = None,
    layer: Annotated[
        Path,
        typer.Option("--layer", "-l", help="Where to write the ATT&CK Navigator layer (JSON)."),
    ] = Path("attack-layer.json"),
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="table or json (the table, on stdout).")
    ] = Format.table,
    config: ConfigOption = None,
) -> None:
    """Show the ATT&CK tactics and techniques the rules cover, and write a layer.

    Covers the rules ``detector run`` would run: those of PATHS (default: the settings'
    ``rules.paths``) under the settings' rule policy (``--config``, ``DETECTOR_RULES__*``).
    Counts the rules that raise alerts (disabled rules and building blocks of correlations
    are left out) per ATT&CK tactic, and writes an ATT&CK Navigator layer (format 4.5)
    scoring each technique by its number of rules: open it in the Navigator with "Open
    Existing Layer".
    """
    ruleset, effective = _load_with_policy(paths, config)
    cover = coverage(effective.ruleset)
    layer.parent.mkdir(parents=True, exist_ok=True)
    layer.write_text(json.dumps(navigator_layer(cover), indent=2) + "\n", encoding="utf-8")
    if fmt is Format.json:
        _json(cover.to_dict())
    else:
        table = Table("tactic", "id", "techniques", "rules", title="ATT&CK coverage")
        for row in cover.tactics:
            tactic = TACTICS[row.tactic]
            count = str(len(row.rules)) if row.rules else "[red]0[/red]"
            table.add_row(tactic.name, tactic.id, ", ".join(row.techniques) or "-", count)
        out.print(table)
        out.print(
            f"{len(cover.covered)} of {len(cover.tactics)} tactics covered by "
            f"{cover.rule_count} alerting rule(s); {len(cover.untagged)} without ATT&CK tags"
        )
    err.print(f"ATT&CK Navigator layer written to {escape(str(layer))}")
    _warn_rejected(ruleset)
