"""The ``detector`` console command (typer). Only the CLI layer reads the environment."""

from __future__ import annotations

import typer

from detector import __version__
from detector.app.collector import tune_collector
from detector.normalize import COMPILED

app = typer.Typer(
    name="detector",
    help="Streaming Sigma detection for CI/CD pipelines and container registries.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        build = "compiled" if COMPILED else "interpreted"
        typer.echo(f"detector {__version__} (decode and normalize {build})")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Streaming Sigma detection for CI/CD pipelines and container registries."""


def run() -> None:
    """The console command: the collector tuned for the hot path, then the commands."""
    tune_collector()
    app()


# Subcommands register themselves below (one module per command group).
from detector.cli import normalize as _normalize  # noqa: E402

app.command("normalize")(_normalize.normalize)
from detector.cli import config as _config  # noqa: E402
from detector.cli import replay as _replay  # noqa: E402
from detector.cli import service as _service  # noqa: E402

app.command("replay")(_replay.replay_command)
app.command("run")(_service.run_command)
app.add_typer(_config.config_app, name="config")
from detector.cli import rules as _rules  # noqa: E402

app.add_typer(_rules.app, name="rules")
from detector.cli import kibana as _kibana  # noqa: E402

app.add_typer(_kibana.app, name="kibana")
