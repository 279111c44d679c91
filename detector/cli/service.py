"""``detector run``: the streaming service."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from detector.app.logging import configure_logging
from detector.app.service import STAGES, Stage, serve
from detector.cli.config import ConfigOption, settings_or_exit
from detector.errors import ConfigError, RuleLoadError

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
    settings = settings_or_exit(config)
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(serve(settings, stage=chosen))
    except (ConfigError, RuleLoadError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
