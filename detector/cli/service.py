"""``detector run``: the streaming service."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from detector.app.logging import configure_logging
from detector.app.service import STAGES, Stage, serve
from detector.app.workers import PARENT_ENV, WORKER_ENV, serve_worker, supervise, worker_settings
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


WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        max=64,
        help="Processes to run, each a member of the consumer groups (default: run.workers).",
    ),
]


def run_command(
    config: ConfigOption = None, stage: StageOption = "all", workers: WorkersOption = None
) -> None:
    """Consume Kafka, detect and correlate, write alerts to the configured sinks (until
    SIGTERM)."""
    if stage not in STAGES:
        typer.echo(f"error: --stage must be one of {', '.join(STAGES)}, not {stage!r}", err=True)
        raise typer.Exit(2)
    chosen: Stage = stage
    settings = settings_or_exit(config)
    configure_logging(settings.log.level, settings.log.format)
    index = os.environ.get(WORKER_ENV)
    count = workers or settings.run.workers
    try:
        if index is not None:  # a worker started by the supervising detector run
            mine = worker_settings(settings, int(index))
            parent = int(os.environ.get(PARENT_ENV, "0"))
            asyncio.run(serve_worker(serve(mine, stage=chosen), parent))
        elif count > 1:
            command = [sys.executable, "-m", "detector", *sys.argv[1:]]
            asyncio.run(
                supervise(
                    lambda hook, health: serve(settings, stage=chosen, on_stop=hook, health=health),
                    command,
                    settings,
                    count,
                )
            )
        else:
            asyncio.run(serve(settings, stage=chosen))
    except (ConfigError, RuleLoadError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
