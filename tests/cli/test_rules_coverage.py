"""``detector rules coverage``: the ATT&CK table of the loaded rules and a Navigator layer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from rules_helpers import BURST, ROOT, STOP_LOGGING, STOP_LOGGING_ID, write
from typer.testing import CliRunner

from detector.app.authoring import TACTICS, TECHNIQUES, coverage, navigator_layer
from detector.cli.main import app
from detector.detect import load_rules

runner = CliRunner()

_TECHNIQUE_ID = "^T[0-9]{4}(\\.[0-9]{3})?$"
_LINK = {
    "type": "object",
    "required": ["label", "url"],
    "properties": {"label": {"type": "string"}, "url": {"type": "string", "pattern": "^https://"}},
}

#: The ATT&CK Navigator layer file format 4.5, as its specification's property tables
#: define it (required fields, types, value sets), written as JSON Schema.
LAYER_4_5: dict[str, Any] = {
    "type": "object",
    "required": ["name", "domain", "versions"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "domain": {"enum": ["enterprise-attack", "mobile-attack", "ics-attack"]},
        "versions": {
            "type": "object",
            "required": ["navigator", "layer"],
            "properties": {
                "attack": {"type": "string", "pattern": "^[0-9]+$"},
                "navigator": {"type": "string", "pattern": "^([5-9]|4\\.9)\\.[0-9]"},
                "layer": {"const": "4.5"},
            },
        },
        "sorting": {"enum": [0, 1, 2, 3]},
        "hideDisabled": {"type": "boolean"},
        "layout": {
            "type": "object",
            "properties": {
                "layout": {"enum": ["side", "flat", "mini"]},
                "showID": {"type": "boolean"},
                "showName": {"type": "boolean"},
            },
        },
        "techniques": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["techniqueID"],
                "properties": {
                    "techniqueID": {"type": "string", "pattern": _TECHNIQUE_ID},
                    "tactic": {"enum": list(TACTICS)},
                    "comment": {"type": "string"},
                    "enabled": {"type": "boolean"},
                    "score": {"type": "number"},
                    "color": {"type": "string"},
                    "showSubtechniques": {"type": "boolean"},
                    "links": {"type": "array", "items": _LINK},
                },
                "additionalProperties": False,
            },
        },
        "gradient": {
            "type": "object",
            "required": ["colors", "minValue", "maxValue"],
            "properties": {
                "colors": {
                    "type": "array",
                    "minItems": 2,
                    "items": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"},
                },
                "minValue": {"type": "number"},
                "maxValue": {"type": "number"},
            },
        },
        "legendItems": {"type": "array"},
        "metadata": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "value"],
                "properties": {"name": {"type": "string"}, "value": {"type": "string"}},
            },
        },
        "selectTechniquesAcrossTactics": {"type": "boolean"},
        "selectSubtechniquesWithParent": {"type": "boolean"},
    },
}


def check_layer(layer: dict[str, Any]) -> None:
    """``layer`` follows format 4.5 and its gradient spans its scores (maxValue > minValue)."""
    jsonschema.validate(layer, LAYER_4_5)
    gradient = layer["gradient"]
    assert gradient["maxValue"] > gradient["minValue"]
    assert all(
        gradient["minValue"] <= t["score"] <= gradient["maxValue"] for t in layer["techniques"]
    )


def test_coverage_prints_table_and_writes_a_valid_layer(tmp_path: Path) -> None:
    """A rule tagged with the pre-v19 ``defense-evasion`` counts under Stealth; a
    correlation counts under its tactic while its ``generate: false`` base rule counts
    nowhere; the layer scores each technique by its rules and passes the 4.5 schema."""
    write(tmp_path / "rules" / "stop.yml", STOP_LOGGING)
    write(tmp_path / "rules" / "burst.yml", BURST)
    layer_path = tmp_path / "out" / "layer.json"
    result = runner.invoke(
        app,
        ["rules", "coverage", str(tmp_path / "rules"), "--layer", str(layer_path), "-f", "json"],
    )
    assert result.exit_code == 0, result.output
    table = {row["tactic"]: row for row in json.loads(result.stdout)["tactics"]}
    assert list(table) == list(TACTICS)
    assert (table["stealth"]["id"], table["stealth"]["rules"]) == ("TA0005", 1)
    assert table["stealth"]["techniques"] == ["T1562.008"]
    assert table["credential-access"]["rules"] == 1
    assert sum(row["rules"] for row in table.values()) == 2
    layer = json.loads(layer_path.read_text())
    check_layer(layer)
    scores = {t["techniqueID"]: t["score"] for t in layer["techniques"]}
    assert scores == {"T1562.008": 1, "T1555.006": 1}
    assert "written to" in result.stderr


def test_coverage_table_renders_every_tactic(tmp_path: Path) -> None:
    """The table view lists every tactic of the ATT&CK table with its id, and a summary."""
    write(tmp_path / "rules" / "stop.yml", STOP_LOGGING)
    result = runner.invoke(
        app, ["rules", "coverage", str(tmp_path / "rules"), "-l", str(tmp_path / "l.json")]
    )
    assert result.exit_code == 0, result.output
    for tactic in TACTICS.values():
        assert tactic.id in result.stdout
    assert f"1 of {len(TACTICS)} tactics covered by 1 alerting rule(s)" in result.stdout


def test_coverage_leaves_out_rules_the_policy_disables(tmp_path: Path) -> None:
    """Like ``detector run``, coverage applies the settings' rule policy: a disabled rule
    covers nothing."""
    write(tmp_path / "rules" / "stop.yml", STOP_LOGGING)
    write(tmp_path / "rules" / "burst.yml", BURST)
    config = write(tmp_path / "detector.yaml", f"rules:\n  disabled: [{STOP_LOGGING_ID}]\n")
    args = ["coverage", str(tmp_path / "rules"), "-l", str(tmp_path / "l.json"), "-f", "json"]
    result = runner.invoke(app, ["rules", *args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    table = {row["tactic"]: row["rules"] for row in json.loads(result.stdout)["tactics"]}
    assert (table["stealth"], table["credential-access"]) == (0, 1)


def test_pack_layer_is_valid_and_names_only_known_techniques() -> None:
    """Over the project's pack, the layer passes the 4.5 schema and every technique it
    scores is one of the ATT&CK table's (the table the hygiene test enforces)."""
    cover = coverage(load_rules([ROOT / "detections" / "rules"]))
    layer = navigator_layer(cover)
    check_layer(layer)
    assert layer["techniques"]
    assert {t["techniqueID"] for t in layer["techniques"]} <= set(TECHNIQUES)
    assert not cover.untagged
