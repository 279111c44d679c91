"""Placeholders: organization values from configuration, filled the same way in the engine,
in pySigma conversions and in sigma-cli; a placeholder without values is reported or, when
asked, disables its rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from engine_helpers import event
from sigma.collection import SigmaCollection
from sigma.processing.pipeline import ProcessingPipeline
from typer.testing import CliRunner

from detector.cli.main import app
from detector.detect import DetectionEngine
from detector.detect.placeholders import (
    conversion_pipeline,
    load_rules_with_placeholders,
    placeholder_uses,
    placeholder_values,
)
from detector.detect.rulefiles import rule_files
from detector.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SIGMA = Path(sys.executable).parent / "sigma"

OUTSIDE_CI = """\
title: CI Key Used Outside CI
id: 0c7b2f6e-5d1a-4f3e-9b8c-7a6d5e4f3a21
status: test
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        userIdentity.userName|startswith: 'ci-'
    filter_ci:
        sourceIPAddress|expand: '%ci_networks%'
    filter_bots:
        userIdentity.userName|expand: '%bot_users%'
    condition: selection and not 1 of filter_*
level: high
"""

OIDC = """\
title: OIDC Subject Outside The Organization
id: 4b1e7c2d-8f3a-4d6e-a5b9-0c1d2e3f4a5b
status: test
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: AssumeRoleWithWebIdentity
    filter_org:
        userIdentity.userName|startswith|expand: 'repo:%github_orgs%/'
    condition: selection and not filter_org
level: medium
"""


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_networks_become_pysigma_wildcard_patterns() -> None:
    """``*_networks`` values are CIDRs expanded as pySigma expands them; others stay as written."""
    values = placeholder_values(
        {
            "ci_networks": ["10.20.0.0/16", "172.16.0.0/12", "2001:db8::/32", "192.0.2.7/32"],
            "bot_users": ["deploy-bot", "renovate*"],
        }
    )
    assert values["ci_networks"][:2] == ("10.20.*", "172.16.*")
    assert len(values["ci_networks"]) == 1 + 16 + 1 + 1
    assert values["ci_networks"][-2:] == ("2001:db8:*", "192.0.2.7")
    assert values["bot_users"] == ("deploy-bot", "renovate*")


def test_invalid_values_are_all_reported_at_once() -> None:
    """Every bad network and bad name is listed in one ConfigError naming the placeholder."""
    with pytest.raises(ConfigError) as caught:
        placeholder_values(
            {"ci_networks": ["10.20.0.0/33", "office"], "x-y": ["a"], "office_networks": []}
        )
    message = str(caught.value)
    assert "ci_networks: '10.20.0.0/33'" in message
    assert "ci_networks: 'office'" in message
    assert "'x-y'" in message


def test_engine_matches_networks_by_prefix_not_by_text(tmp_path: Path) -> None:
    """A CI address is filtered out; 10.200.x (same leading text as 10.20) and other networks
    alert; a listed bot is filtered out."""
    _write(tmp_path, "rule.yml", OUTSIDE_CI)
    values = placeholder_values({"ci_networks": ["10.20.0.0/16"], "bot_users": ["ci-robot"]})
    rules = load_rules_with_placeholders([tmp_path], values)
    assert rules.errors == () and len(rules.rules) == 1
    engine = DetectionEngine(rules)

    def alerts(user: str, ip: str) -> int:
        return len(
            engine.evaluate(event({"userIdentity": {"userName": user}, "sourceIPAddress": ip}))
        )

    assert alerts("ci-deploy", "10.20.3.4") == 0
    assert alerts("ci-deploy", "10.200.3.4") == 1
    assert alerts("ci-deploy", "10.21.0.1") == 1
    assert alerts("ci-robot", "203.0.113.9") == 0


def test_placeholder_inside_a_value_with_modifiers(tmp_path: Path) -> None:
    """``startswith|expand: 'repo:%github_orgs%/'`` matches each organization's prefix only."""
    _write(tmp_path, "rule.yml", OIDC)
    values = placeholder_values({"github_orgs": ["acme", "acme-labs"]})
    engine = DetectionEngine(load_rules_with_placeholders([tmp_path], values))

    def alerts(subject: str) -> int:
        record = {"eventName": "AssumeRoleWithWebIdentity", "userIdentity": {"userName": subject}}
        return len(engine.evaluate(event(record)))

    assert alerts("repo:acme/api:ref:refs/heads/main") == 0
    assert alerts("repo:acme-labs/x:pull_request") == 0
    assert alerts("repo:acmecorp/api:ref:refs/heads/main") == 1


def test_missing_placeholder_is_an_error_naming_file_rule_and_placeholder(tmp_path: Path) -> None:
    """The file using an unset placeholder is not loaded; each use is one error (file, rule,
    placeholder, how to fix it); other files load."""
    bad = _write(tmp_path, "outside_ci.yml", OUTSIDE_CI)
    _write(tmp_path, "oidc.yml", OIDC)
    rules = load_rules_with_placeholders([tmp_path], placeholder_values({"github_orgs": ["a"]}))
    assert [r.info.title for r in rules.rules] == ["OIDC Subject Outside The Organization"]
    messages = [str(e) for e in rules.errors]
    assert len(messages) == 2
    for name, message in zip(("ci_networks", "bot_users"), messages, strict=True):
        assert message.startswith(f"{bad}: rule 'CI Key Used Outside CI'")
        assert f"placeholder %{name}%, which has no value" in message
        assert f"rules.placeholders.{name}" in message
        assert "missing_placeholders" in message
    assert rules.disabled == ()


def test_missing_placeholder_disables_the_rule_when_asked(tmp_path: Path) -> None:
    """With ``disable_missing`` the rule is left out with a note, and nothing is an error."""
    _write(tmp_path, "outside_ci.yml", OUTSIDE_CI)
    _write(tmp_path, "oidc.yml", OIDC)
    rules = load_rules_with_placeholders(
        [tmp_path], placeholder_values({"github_orgs": ["a"]}), disable_missing=True
    )
    assert rules.errors == ()
    assert len(rules.rules) == 1
    assert {str(n).rsplit("%", 2)[-2] for n in rules.disabled} == {"ci_networks", "bot_users"}


def test_uses_are_found_only_under_expand(tmp_path: Path) -> None:
    """``%name%`` counts only in values under an ``expand`` modifier, not in text elsewhere."""
    text = OIDC.replace("level: medium", "description: see %not_a_use%\nlevel: medium")
    _write(tmp_path, "oidc.yml", text)
    _write(tmp_path, "plain.yml", OIDC.replace("|expand", ""))
    uses = placeholder_uses(rule_files([tmp_path]))
    assert [(u.path.name, u.name) for u in uses] == [("oidc.yml", "github_orgs")]


def test_pysigma_pipeline_fills_what_the_engine_fills(tmp_path: Path) -> None:
    """The conversion pipeline is a pySigma ``value_placeholders`` pipeline with the same values
    the engine compiled in."""
    values = placeholder_values({"ci_networks": ["10.20.0.0/16"], "bot_users": ["ci-robot"]})
    rule = SigmaCollection.from_yaml(OUTSIDE_CI).rules[0]
    ProcessingPipeline.from_dict(conversion_pipeline(values)).apply(rule)
    filled = {
        str(item.field): [str(v) for v in item.value]
        for name in ("filter_ci", "filter_bots")
        for item in rule.detection.detections[name].detection_items
    }
    assert filled == {"sourceIPAddress": ["10.20.*"], "userIdentity.userName": ["ci-robot"]}
    _write(tmp_path, "rule.yml", OUTSIDE_CI)
    assert load_rules_with_placeholders([tmp_path], values).placeholders == values


def test_sigma_cli_converts_a_pack_rule_with_the_generated_pipeline(tmp_path: Path) -> None:
    """``detector config placeholders`` output plus the project's field pipeline lets sigma-cli
    convert a pack rule with placeholders; the query holds the example values."""
    generated = CliRunner().invoke(
        app, ["config", "placeholders", "--config", str(ROOT / "examples" / "detector.yaml")]
    )
    assert generated.exit_code == 0, generated.output
    pipeline = _write(tmp_path, "placeholders.yml", generated.stdout)
    rule = ROOT / "detections/rules/cloudtrail/cloudtrail_ci_user_key_used_outside_ci.yml"
    fields = ROOT / "detections/pipelines/cloudtrail.yml"
    done = subprocess.run(
        [str(SIGMA), "convert", "-t", "lucene", "-p", str(pipeline), "-p", str(fields), str(rule)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "10.20.*" in done.stdout and "192.0.2.*" in done.stdout
    assert "%ci_networks%" not in done.stdout
