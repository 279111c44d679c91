"""The rule policy as a process applies it: settings, start-up checks, metric, replay."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from detector.app.metrics import REGISTRY
from detector.app.policy import effective_rules, policy_warnings, rule_policy
from detector.app.settings import RulesConfig, load_settings
from detector.cli.main import app
from detector.detect import DetectionEngine, load_rules
from detector.errors import ConfigError
from detector.models import Event, LogSource

RULE = """
title: Secret read
id: 2c000000-0000-4000-8000-000000000001
name: secret_read
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  selection: {eventName: GetSecretValue}
  condition: selection
level: medium
"""

EXCEPTIONS = """
exceptions:
  - id: backup-reader
    rules: [secret_read]
    reason: the backup job reads secrets nightly
    author: platform
    detection:
      job: {userIdentity.userName: backup}
      condition: job
  - id: old-migration
    rules: [secret_read, renamed_rule]
    reason: finished migration
    author: cloud-team
    expires: 2020-01-01
    detection:
      who: {userIdentity.userName: migrator}
      condition: who
"""


def _files(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules" / "rule.yml"
    rules.parent.mkdir()
    rules.write_text(RULE)
    excs = tmp_path / "exceptions.yml"
    excs.write_text(EXCEPTIONS)
    return rules.parent, excs


def _record(n: int, user: str) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333"},
        "eventTime": f"2026-11-28T10:{n:02d}:00Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }


def _listed(config: Path) -> dict[str, Any]:
    """The one row of ``rules list --config config -f json``."""
    done = CliRunner().invoke(app, ["rules", "list", "--config", str(config), "-f", "json"])
    assert done.exit_code == 0, done.output
    [row] = orjson.loads(done.stdout)
    assert isinstance(row, dict)
    return row


def test_policy_settings_from_yaml_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every policy setting reads from the YAML file; ``disabled`` also from a
    comma-separated variable; a level outside Sigma's is a configuration error."""
    config = tmp_path / "detector.yaml"
    config.write_text(
        "rules:\n  exceptions: [exc.yml]\n  min_level: high\n  statuses: [stable]\n"
        "  level_overrides: {a: critical}\n"
    )
    monkeypatch.setenv("DETECTOR_RULES__DISABLED", "rule-a, rule-b")
    policy = rule_policy(load_settings(config).rules)
    assert policy.disabled == ("rule-a", "rule-b")
    assert (policy.min_level, policy.statuses) == ("high", ("stable",))
    assert policy.level_overrides == {"a": "critical"}
    assert load_settings(config).rules.exceptions == [tmp_path / "exc.yml"]  # beside the file
    monkeypatch.setenv("DETECTOR_RULES__MIN_LEVEL", "severe")
    with pytest.raises(ConfigError, match=r"rules\.min_level"):
        load_settings(config)


def test_start_up_reports_expired_and_unknown_as_warnings(tmp_path: Path) -> None:
    """An expired exception, an exception naming an unknown rule and a policy entry naming
    an unknown rule are warnings; the valid exception applies and its drops are exported
    as ``detector_exception_drops_total``."""
    rules_dir, excs = _files(tmp_path)
    config = RulesConfig(paths=[rules_dir], exceptions=[excs], disabled=["no-such-rule"])
    ruleset = load_rules(config.paths)
    effective, warnings = effective_rules(config, ruleset, now=1_800_000_000.0)
    text = [str(w) for w in warnings]
    assert any("'old-migration' expired on 2020-01-01T00:00:00Z" in t for t in text)
    assert any("names rule 'renamed_rule', which is not loaded" in t for t in text)
    assert any("names 'no-such-rule', which is not loaded" in t for t in text)
    assert len(text) == 3
    engine = DetectionEngine(effective.ruleset)
    labels = {"exception": "backup-reader", "rule_id": "2c000000-0000-4000-8000-000000000001"}
    before = REGISTRY.get_sample_value("detector_exception_drops_total", labels) or 0.0
    for n, user in enumerate(["backup", "backup", "alice"]):
        raw = _record(n, user)
        ev = Event(
            id=str(n),
            timestamp=1_700_000_000.0 + n,
            family="cloudtrail",
            logsource=LogSource("aws", "cloudtrail"),
            ecs={},
            raw=raw,
        )
        engine.evaluate(ev)
    assert REGISTRY.get_sample_value("detector_exception_drops_total", labels) == before + 2


def test_bad_exception_file_stops_start_up(tmp_path: Path) -> None:
    """A malformed exception is a start-up error that names the file and the problem."""
    rules_dir, _ = _files(tmp_path)
    bad = tmp_path / "bad.yml"
    bad.write_text("exceptions:\n  - {id: x, author: a, detection: {s: {a: b}, condition: s}}\n")
    config = RulesConfig(paths=[rules_dir], exceptions=[bad])
    with pytest.raises(ConfigError, match=r"(?s)invalid exception file.*bad\.yml.*'reason'"):
        effective_rules(config, load_rules(config.paths))


def test_no_warning_for_a_clean_policy(tmp_path: Path) -> None:
    """A policy that names loaded rules and unexpired exceptions gives no warning."""
    rules_dir, _ = _files(tmp_path)
    ruleset = load_rules([rules_dir])
    policy = rule_policy(RulesConfig(disabled=["secret_read"]))
    assert policy_warnings(ruleset, policy, [], now=0.0) == []


def test_replay_applies_the_configured_policy(tmp_path: Path) -> None:
    """``detector replay --config`` runs the rules the configuration's policy leaves on,
    with its exceptions, and prints the warnings on stderr."""
    rules_dir, excs = _files(tmp_path)
    logs = tmp_path / "logs.jsonl"
    logs.write_bytes(
        b"\n".join(orjson.dumps(_record(n, u)) for n, u in enumerate(["backup", "eve"]))
    )
    out = tmp_path / "alerts.jsonl"
    config = tmp_path / "detector.yaml"
    config.write_text(f"rules:\n  paths: [{rules_dir}]\n  exceptions: [{excs}]\n")
    runner = CliRunner()
    done = runner.invoke(app, ["replay", str(logs), "--config", str(config), "-o", str(out)])
    assert done.exit_code == 0, done.output
    users = [orjson.loads(line)["user"]["name"] for line in out.read_bytes().splitlines()]
    assert users == ["eve"]
    config.write_text(f"rules:\n  paths: [{rules_dir}]\n  disabled: [secret_read]\n")
    done = runner.invoke(app, ["replay", str(logs), "--config", str(config), "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes() == b""


def test_rules_list_shows_effective_state_and_why(tmp_path: Path) -> None:
    """``rules list --config`` gives each rule's state, effective level, reasons and the
    exceptions that apply to it."""
    rules_dir, excs = _files(tmp_path)
    config = tmp_path / "detector.yaml"
    config.write_text(
        f"rules:\n  paths: [{rules_dir}]\n  exceptions: [{excs}]\n"
        "  level_overrides: {secret_read: low}\n  min_level: medium\n"
    )
    row = _listed(config)
    assert row["state"] == "disabled"
    assert row["level"] == "low"
    assert row["why"] == (
        "level medium overridden to low (rules.level_overrides); "
        "level low is below rules.min_level medium"
    )
    assert row["exceptions"] == ["backup-reader", "old-migration"]
    table = CliRunner().invoke(app, ["rules", "list", "--config", str(config)])
    assert table.exit_code == 0 and "1 rule(s)" in table.stdout


def test_rules_validate_reports_exceptions(tmp_path: Path) -> None:
    """``rules validate --exceptions`` lists expired exceptions and unknown rule names as
    warnings (exit 0), and malformed entries as errors (exit 1)."""
    rules_dir, excs = _files(tmp_path)
    done = CliRunner().invoke(
        app, ["rules", "validate", str(rules_dir), "--exceptions", str(excs), "-f", "json"]
    )
    assert done.exit_code == 0, done.output
    messages = [p["message"] for p in orjson.loads(done.stdout)["problems"]]
    assert any("'old-migration' expired on 2020-01-01" in m for m in messages)
    assert any("'renamed_rule', which is not loaded" in m for m in messages)
    excs.write_text("exceptions:\n  - {id: x, reason: r, detection: {s: {a: b}, condition: s}}\n")
    done = CliRunner().invoke(app, ["rules", "validate", str(rules_dir), "-e", str(excs)])
    assert done.exit_code == 1
    assert "'author' is required" in done.stdout


def test_shipped_disabled_list_is_not_reported_when_its_rules_are_not_loaded(
    tmp_path: Path,
) -> None:
    """The default ``disabled`` list (the bundled pack's tuning) names rules a deployment
    may not load; only a list given in the settings is checked for unknown names."""
    rules_dir, _ = _files(tmp_path)
    ruleset = load_rules([rules_dir])
    default = RulesConfig(paths=[rules_dir])
    assert default.disabled  # the shipped tuning
    assert effective_rules(default, ruleset)[1] == []
    given = RulesConfig(paths=[rules_dir], disabled=["gone"])
    assert [str(w) for w in effective_rules(given, ruleset)[1]] == [
        "rules.disabled or rules.level_overrides names 'gone', which is not loaded"
    ]


def test_replay_writes_one_document_per_suppressed_group(tmp_path: Path) -> None:
    """With suppression on, ``replay -o`` writes the documents the search sinks would
    hold: one per user and window, counting the others; the summary gives both counts."""
    rules_dir, _ = _files(tmp_path)
    logs = tmp_path / "logs.jsonl"
    users = ["ann", "ann", "ann", "bob"]
    logs.write_bytes(b"\n".join(orjson.dumps(_record(n, u)) for n, u in enumerate(users)))
    out = tmp_path / "alerts.jsonl"
    config = tmp_path / "detector.yaml"
    config.write_text(
        f"rules:\n  paths: [{rules_dir}]\n  suppression:\n    enabled: true\n"
        "    group_by: [user.name]\n"
    )
    done = CliRunner().invoke(app, ["replay", str(logs), "--config", str(config), "-o", str(out)])
    assert done.exit_code == 0, done.output
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    counts = {d["user"]["name"]: d["kibana"]["alert"]["suppression"]["docs_count"] for d in docs}
    assert counts == {"ann": 2, "bob": 0}
    assert re.search(r"alert documents\W+2\b", done.stdout)


def test_rules_list_shows_suppression(tmp_path: Path) -> None:
    """``rules list`` says how each running rule's alerts are grouped."""
    rules_dir, _ = _files(tmp_path)
    config = tmp_path / "detector.yaml"
    config.write_text(
        f"rules:\n  paths: [{rules_dir}]\n  suppression:\n    enabled: true\n"
        "    group_by: [user.name]\n    window_seconds: 900\n"
    )
    row = _listed(config)
    assert (row["state"], row["suppression"]) == ("enabled", "user.name per 900s")


def test_kibana_export_carries_the_rule_suppression(tmp_path: Path) -> None:
    """``rules convert -t kibana`` turns a rule's ``suppression`` attribute into Kibana's
    own ``alert_suppression`` (group-by, duration, missing values grouped)."""
    rule = tmp_path / "rule.yml"
    rule.write_text(RULE + "suppression: {group_by: [userIdentity.userName], window: 90m}\n")
    done = CliRunner().invoke(app, ["rules", "convert", "-t", "kibana", str(rule)])
    assert done.exit_code == 0, done.output
    [converted] = [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert converted["alert_suppression"] == {
        "group_by": ["userIdentity.userName"],
        "duration": {"value": 90, "unit": "m"},
        "missing_fields_strategy": "suppress",
    }
