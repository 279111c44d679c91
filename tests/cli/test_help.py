"""Every ``detector`` command and subcommand answers ``--help``."""

from __future__ import annotations

from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from detector.cli.main import app


def _command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            paths.extend(_command_paths(sub, (*prefix, name)))
    return paths


def test_every_command_has_help() -> None:
    """``--help`` exits 0 and prints a usage line and a description for every command."""
    root = get_command(app)
    paths = _command_paths(root)
    assert ("replay",) in paths and ("run",) in paths and ("rules", "test") in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage:" in result.output, path
        command = root
        for name in path:
            command = command.commands[name]
        assert command.help or command.short_help, f"{' '.join(path)} has no description"


def test_version() -> None:
    """``--version`` prints the package version."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("detector ")


def test_unknown_command_is_a_usage_error() -> None:
    """A misspelt command exits 2 (usage error), not 0 or 1."""
    result = CliRunner().invoke(app, ["replya"])
    assert result.exit_code == 2
