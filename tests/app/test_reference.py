"""The configuration reference: generated from the settings models, complete, and the same
text as docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from typer.testing import CliRunner

from detector.app.reference import field_comments, reference_markdown, sections, type_name
from detector.app.settings import DetectorSettings, HealthConfig
from detector.cli.main import app
from detector.sinks.config import JsonLinesSinkConfig

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "configuration.md"


def _keys(model: type[BaseModel], path: str = "") -> set[str]:
    """Every key path of the settings tree (``<name>`` for the entries of a map)."""
    found: set[str] = set()
    for section in sections(model, path):
        found |= {f"{section.path}.{row.key}" if section.path else row.key for row in section.rows}
    return found


def test_docs_page_is_the_generated_reference() -> None:
    """docs/configuration.md is exactly what ``detector config reference`` prints (regenerate
    with ``detector config reference > docs/configuration.md``)."""
    result = CliRunner().invoke(app, ["config", "reference"])
    assert result.exit_code == 0, result.output
    assert result.stdout == reference_markdown()
    assert PAGE.read_text(encoding="utf-8") == result.stdout


def test_every_key_is_in_the_reference_with_its_environment_variable() -> None:
    """Each key of the settings tree has a row naming its DETECTOR_ variable, including the
    keys the README never listed (sinks.opensearch, sinks.jsonl, health.host/port)."""
    page = reference_markdown()
    keys = _keys(DetectorSettings)
    for key in (
        "sinks.opensearch",
        "sinks.opensearch.hosts",
        "sinks.jsonl.path",
        "health.host",
        "health.port",
        "rules.paths",
        "rules.placeholders",
        "decode.schemas_dir",
    ):
        assert key in keys, key
    for key in keys:
        variable = "DETECTOR_" + key.replace(".", "__").upper()
        assert f"`{variable}`" in page, variable
    assert "is relative to the folder of\n  that file" in page


def test_field_comments_and_types_are_read_from_the_models() -> None:
    """``#:`` comments become descriptions (inherited ones too); types read as words."""
    assert field_comments(HealthConfig)["port"] == "Listen port (0 picks a free one)."
    assert "fsync" in field_comments(JsonLinesSinkConfig)["fsync"]
    assert type_name(Path | None) == "path (optional)"
    assert type_name(dict[str, list[str]]) == "map of list of string"
