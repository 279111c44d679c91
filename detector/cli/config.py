"""``detector config``: the effective settings, and the settings every command shares.

``--config`` (or ``DETECTOR_CONFIG``) names the YAML settings file; ``DETECTOR_*``
environment variables override it. A configuration problem exits with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from detector.app.reference import reference_markdown
from detector.app.rulepack import placeholder_pipeline_yaml
from detector.app.settings import DetectorSettings, RulesConfig, load_settings, redacted
from detector.errors import ConfigError

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="DETECTOR_CONFIG", help="YAML settings file."),
]


def settings_or_exit(config: Path | None) -> DetectorSettings:
    """The settings from ``config`` and the environment; exit 2 with the problems if invalid."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def rules_settings(config: Path | None) -> RulesConfig:
    """The ``rules`` section of the settings (exit 2 if the settings are invalid)."""
    return settings_or_exit(config).rules


@config_app.command("show")
def show_command(config: ConfigOption = None) -> None:
    """Print the effective settings as JSON, secrets redacted."""
    typer.echo(json.dumps(redacted(settings_or_exit(config)), indent=2, default=str))


@config_app.command("placeholders")
def placeholders_command(config: ConfigOption = None) -> None:
    """Print rules.placeholders as a pySigma pipeline file, for ``sigma convert -p FILE``.

    Networks are expanded to the wildcard patterns the engine matches, so sigma-cli
    conversions and ``detector`` agree.
    """
    try:
        text = placeholder_pipeline_yaml(rules_settings(config))
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    sys.stdout.write(text)


@config_app.command("reference")
def reference_command() -> None:
    """Print the configuration reference (every key, its type, default, environment
    variable and meaning) as Markdown; docs/configuration.md holds the same text."""
    sys.stdout.write(reference_markdown())
