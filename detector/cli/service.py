"""``detector run`` and ``detector config show``: the streaming service and its settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from detector.app.logging import configure_logging
from detector.app.service import STAGES, Stage, serve
from detector.app.settings import load_settings, redacted
from detector.errors import ConfigError, RuleLoadError

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="DETECTOR_CONFIG", help="YAML settings file."),
]


StageOption = Annotated[
    str,
    typer.Option(
        "--stage",
        envvar="DETECTOR_STAGE",
        help="Which runtime stage(s) to run: all (both, one process), detect or correlate.",
    ),
]


def run_command(config: ConfigOption = None, stage: StageOption = "all") -> None:
    """Consume Kafka, detect and correlate, write alerts to the configured sinks (until
    SIGTERM)."""
    if stage not in STAGES:
        typer.echo(f"error: --stage must be one of {', '.join(STAGES)}, not {stage!r}", err=True)
        raise typer.Exit(2)
    chosen: Stage = stage
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(serve(settings, stage=chosen))
    except (ConfigError, RuleLoadError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@config_app.command("show")
def show_command(config: ConfigOption = None) -> None:
    """Print the effective settings as JSON, secrets redacted."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(redacted(settings), indent=2, default=str))
