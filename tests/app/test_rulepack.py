"""The configured rule pack: placeholder values from settings (inline or files), relative
paths anchored at the settings file, and the start-up report of ``run`` and ``replay``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detector.app.rulepack import configured_placeholders, rule_loader
from detector.app.settings import load_settings
from detector.cli.main import app
from detector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "detections" / "rules"
DETECTOR = Path(sys.executable).parent / "detector"
RULE = ROOT / "detections/rules/cloudtrail/cloudtrail_console_login_no_mfa_outside_office.yml"


def _config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "detector.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_values_inline_and_from_a_file(tmp_path: Path) -> None:
    """A ``{file: ...}`` entry reads one value per line, skipping blanks and # comments."""
    (tmp_path / "bots.txt").write_text("# automation\nterraform-bot\n\n  deploy[bot]  \n")
    config = _config(
        tmp_path,
        "rules:\n  placeholders:\n    bot_users: {file: bots.txt}\n"
        "    org_accounts: [111122223333, '012345678901']\n",
    )
    values = configured_placeholders(load_settings(config).rules)
    assert values == {
        "bot_users": ["terraform-bot", "deploy[bot]"],
        "org_accounts": ["111122223333", "012345678901"],
    }


def test_unreadable_value_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing value file names the setting and the file."""
    config = _config(tmp_path, "rules:\n  placeholders:\n    bot_users: {file: nope.txt}\n")
    with pytest.raises(ConfigError, match=r"rules\.placeholders\.bot_users\.file: cannot read"):
        rule_loader(load_settings(config).rules)


def test_relative_paths_follow_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative paths written in the YAML file resolve against its folder, whatever the
    working directory; absolute ones stay; those from the environment stay relative to
    the working directory."""
    config = _config(
        tmp_path / "etc",
        "rules:\n  paths: [rules, /srv/rules]\n"
        "  placeholders:\n    bot_users: {file: bots.txt}\n"
        "decode:\n  schemas_dir: ../schemas\n"  # self-contained: deliberate (inside tmp_path)
        "sinks:\n  jsonl: {path: out/alerts.jsonl}\n",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(config)
    etc = tmp_path / "etc"
    assert settings.rules.paths == [etc / "rules", Path("/srv/rules")]
    assert settings.rules.placeholders["bot_users"].file == etc / "bots.txt"  # type: ignore[union-attr]
    assert settings.decode.schemas_dir == etc / "../schemas"  # self-contained: deliberate
    assert settings.sinks.jsonl is not None
    assert settings.sinks.jsonl.path == etc / "out/alerts.jsonl"
    monkeypatch.setenv("DETECTOR_RULES__PATHS", '["pack"]')
    assert load_settings(config).rules.paths == [Path("pack")]


def test_example_settings_load_the_whole_pack_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """examples/detector.yaml loads every rule of the pack, placeholders filled, from any cwd."""
    monkeypatch.chdir(tmp_path)
    rules = load_settings(ROOT / "examples" / "detector.yaml").rules
    ruleset = rule_loader(rules)(rules.paths)
    assert ruleset.errors == () and ruleset.disabled == ()
    assert len(ruleset.rules) >= 40


def test_run_exits_2_listing_rule_and_placeholder(tmp_path: Path) -> None:
    """``detector run`` (a real process) with a placeholder left unset stops before connecting
    to anything, exit 2, naming the rule file, the rule and the placeholder."""
    config = _config(tmp_path, f"rules:\n  paths: [{RULE}]\nhealth:\n  enabled: false\n")
    result = subprocess.run(
        [str(DETECTOR), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"{RULE}: rule 'Console Login Without MFA From Outside" in result.stderr
    assert "placeholder %office_networks%, which has no value" in result.stderr


def test_replay_reports_missing_placeholders_and_disabled_rules(tmp_path: Path) -> None:
    """``replay`` lists the rules it could not load for want of a value; with
    ``missing_placeholders: disable`` it lists them as disabled, not rejected."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "one.jsonl").write_text(json.dumps({"eventName": "ConsoleLogin"}) + "\n")
    config = _config(tmp_path / "a", "rules:\n  placeholders:\n    office_networks: []\n")
    rejected = CliRunner().invoke(
        app, ["replay", "--config", str(config), "--rules", str(PACK), str(logs)]
    )
    assert "rejected" in rejected.stderr and "%ci_networks%" in rejected.stderr
    assert "%office_networks%" not in rejected.stderr  # set (to no values): not missing
    disabled = _config(tmp_path / "b", "rules:\n  missing_placeholders: disable\n")
    result = CliRunner().invoke(
        app, ["replay", "--config", str(disabled), "--rules", str(PACK), str(logs)]
    )
    assert result.exit_code == 0, result.output
    assert "disabled" in result.stderr and "%org_accounts%" in result.stderr
    assert "rejected" not in result.stderr
