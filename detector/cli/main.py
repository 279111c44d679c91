"""The ``detector`` console command (typer). The only module that reads the environment."""

from __future__ import annotations

import gc

import typer

from detector import __version__
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


#: Allocations between two young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 100_000


def tune_collector() -> None:
    """Make the cyclic garbage collector cheap for the per-record hot path.

    Every record allocates dozens of containers (the decoded record, its ECS document)
    that live for a while in replay's reorder buffer or a batch, so with CPython's
    defaults the collector runs every few records and keeps walking the same live
    events: it took half of replay's time. Records hold no reference cycles, so
    collecting less often loses nothing; the objects of start-up (modules, classes) are
    frozen out of the collector's walks altogether. Cycles are still collected.
    Done by the console command only, not when the commands are invoked in process.
    """
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


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
