"""``--source`` is one option shared by ``normalize``, ``replay`` and ``rules explain``."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector.cli.main import app
from detector.models import SOURCES

runner = CliRunner()


@pytest.mark.parametrize(
    "command",
    [
        ["normalize", "--source", "syslog", "-"],
        ["replay", "--source", "syslog", "RECORDS"],
        ["rules", "explain", "--source", "syslog", "some rule", "-"],
    ],
)
def test_unknown_source_is_a_usage_error_listing_every_source(
    command: list[str], tmp_path: Path
) -> None:
    """An unknown source exits 2 before any work, naming every accepted value."""
    records = tmp_path / "records.jsonl"
    records.write_text("{}\n")
    args = [str(records) if a == "RECORDS" else a for a in command]
    result = runner.invoke(app, args, input="{}")
    assert result.exit_code == 2, result.output
    flat = " ".join(result.output.split())
    assert all(source in flat for source in SOURCES)
