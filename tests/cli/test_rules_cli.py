"""``detector rules validate|list|test|convert|explain`` via typer's CliRunner on real files."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLE_CONFIG
from rules_helpers import (
    BURST,
    BURST_ID,
    CORPUS,
    PIPELINE,
    ROOT,
    STOP_LOGGING,
    STOP_LOGGING_ID,
    record,
    stop_logging_tree,
    write,
)
from sigma.rule import SigmaRuleTag
from typer.testing import CliRunner, Result

from detector.app.authoring import attack_threat, case_roots, mirror
from detector.cli.main import app

runner = CliRunner()
DETECTIONS = ROOT / "detections" / "rules"


def run(*args: str, stdin: str | None = None) -> Result:
    """Invoke ``detector rules ...``."""
    return runner.invoke(app, ["rules", *args], input=stdin)


def as_json(result: Result) -> Any:
    """The command's stdout parsed as JSON."""
    return json.loads(result.stdout)


# --------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------


def test_validate_corpus_loads_every_rule() -> None:
    """The 72 SigmaHQ corpus rules all load: none rejected, exit 0."""
    result = run("validate", str(CORPUS), "--format", "json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["loaded"] == 72
    assert report["detections"] == 72
    assert report["rejected"] == 0


def test_validate_project_rules_exit_code_matches_problems() -> None:
    """Over detections/rules with the example settings, exit 1 iff errors are reported, and
    every error names its file."""
    result = run("validate", str(DETECTIONS), "--format", "json", "--config", str(EXAMPLE_CONFIG))
    report = as_json(result)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert result.exit_code == (1 if errors else 0)
    assert report["loaded"] >= 40
    assert all(p["path"] for p in errors)


def test_validate_without_placeholder_values_names_rule_and_placeholder() -> None:
    """Without settings, every pack rule using a placeholder is an error naming its file, the
    rule and the placeholder; with the example settings none is."""
    result = run("validate", str(DETECTIONS), "--format", "json")
    assert result.exit_code == 1
    errors = [p for p in as_json(result)["problems"] if p["severity"] == "error"]
    named = {re.search(r"placeholder %(\w+)%", p["message"]).group(1) for p in errors}  # type: ignore[union-attr]
    assert named == {
        "ci_networks",
        "office_networks",
        "internal_networks",
        "org_accounts",
        "github_orgs",
        "bot_users",
    }
    assert all(p["path"].endswith(".yml") and "rule '" in p["message"] for p in errors)
    ok = as_json(run("validate", str(DETECTIONS), "-f", "json", "--config", str(EXAMPLE_CONFIG)))
    assert not any("placeholder" in p["message"] for p in ok["problems"])


def test_validate_reports_every_problem_at_once_with_locations(tmp_path: Path) -> None:
    """Broken YAML, an unknown modifier, an unsupported log source and a dangling
    correlation are all reported in one run with file (and line where known); the good
    rule still loads; exit 1."""
    write(tmp_path / "good.yml", STOP_LOGGING)
    write(tmp_path / "broken_yaml.yml", "title: x\ndetection:\n  selection: [a\n")
    bad_modifier = STOP_LOGGING.replace("eventName:\n", "eventName|nosuchmod:\n").replace(
        STOP_LOGGING_ID, "11111111-2222-4333-8444-555555555555"
    )
    write(tmp_path / "bad_modifier.yml", bad_modifier)
    category = (
        STOP_LOGGING.replace("product: aws\n    service: cloudtrail", "category: process_creation")
        .replace(STOP_LOGGING_ID, "22222222-2222-4333-8444-555555555555")
        .replace("CloudTrail Logging Stopped", "Process Rule")
    )
    write(tmp_path / "category.yml", category)
    dangling = BURST.split("---\n")[1]
    write(tmp_path / "dangling_correlation.yml", dangling)

    result = run("validate", str(tmp_path), "--format", "json")
    assert result.exit_code == 1
    report = as_json(result)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    files = {Path(p["path"]).name for p in errors}
    assert files == {
        "broken_yaml.yml",
        "bad_modifier.yml",
        "category.yml",
        "dangling_correlation.yml",
    }
    yaml_error = next(p for p in errors if p["path"].endswith("broken_yaml.yml"))
    assert yaml_error["line"] is not None
    assert report["loaded"] == 1
    assert report["rejected"] == 4


def test_validate_table_prints_locations_and_counts(tmp_path: Path) -> None:
    """The table form shows file:line of a problem and the loaded/rejected summary."""
    write(tmp_path / "good.yml", STOP_LOGGING)
    write(tmp_path / "broken_yaml.yml", "title: x\ndetection:\n  selection: [a\n")
    result = run("validate", str(tmp_path))
    assert result.exit_code == 1
    assert "broken_yaml.yml:" in result.stdout
    assert "1 rule(s) loaded (1 detection, 0 correlation), 1 rejected" in result.stdout


def test_validate_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    """A path that does not exist is a usage error (exit 2), not a validation failure."""
    result = run("validate", str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "no such file or directory" in result.output


# --------------------------------------------------------------------------------------
# list
# --------------------------------------------------------------------------------------


def test_list_corpus_as_json() -> None:
    """Listing the corpus gives 72 rows with unique ids, native log sources and type sigma."""
    result = run("list", str(CORPUS), "--format", "json")
    assert result.exit_code == 0, result.output
    rows = as_json(result)
    assert len(rows) == 72
    assert len({r["id"] for r in rows}) == 72
    assert {r["logsource"] for r in rows} <= {"aws/cloudtrail", "github/audit"}
    assert {r["type"] for r in rows} == {"sigma"}
    assert all(r["title"] and r["level"] for r in rows)


def test_list_shows_correlation_type_and_references(tmp_path: Path) -> None:
    """A correlation row carries its correlation type and referenced rules; tags are listed."""
    write(tmp_path / "stop.yml", STOP_LOGGING)
    write(tmp_path / "burst.yml", BURST)
    rows = {r["id"]: r for r in as_json(run("list", str(tmp_path), "-f", "json"))}
    assert rows[STOP_LOGGING_ID]["type"] == "sigma"
    assert rows[STOP_LOGGING_ID]["tags"] == ["attack.defense-evasion", "attack.t1562.008"]
    assert rows[STOP_LOGGING_ID]["logsource"] == "aws/cloudtrail"
    assert rows[BURST_ID]["type"] == "event_count"
    assert rows[BURST_ID]["logsource"] == "rules: tests_secret_read"


def test_list_marks_first_seen_rules(tmp_path: Path) -> None:
    """A rule with the ``first_seen`` extension is listed with type first-seen."""
    first_seen = STOP_LOGGING + "first_seen:\n    fields: [sourceIPAddress]\n    timespan: 30d\n"
    write(tmp_path / "fs.yml", first_seen)
    rows = as_json(run("list", str(tmp_path), "-f", "json"))
    assert [r["type"] for r in rows] == ["first-seen"]


def test_list_table_mentions_rejections_on_stderr(tmp_path: Path) -> None:
    """Rejected rules are not listed; their count is reported on stderr."""
    write(tmp_path / "good.yml", STOP_LOGGING)
    write(tmp_path / "broken.yml", "title: [\n")
    result = run("list", str(tmp_path))
    assert result.exit_code == 0
    assert "1 rule(s)" in result.stdout
    assert "1 rule(s) or file(s) rejected" in result.stderr


# --------------------------------------------------------------------------------------
# test
# --------------------------------------------------------------------------------------


def test_rule_tests_pass_and_write_junit(tmp_path: Path) -> None:
    """Passing cases exit 0 and the JUnit report lists each case without failures."""
    rules, _ = stop_logging_tree(tmp_path)
    junit = tmp_path / "out" / "junit.xml"
    result = run("test", str(rules), "--junit", str(junit))
    assert result.exit_code == 0, result.output
    assert "2/2 case(s) passed" in result.stdout
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    assert root.get("tests") == "2"
    assert root.get("failures") == "0"
    names = [c.get("name") for c in root.iter("testcase")]
    assert names == ["trail stopped", "trail started"]
    assert not list(root.iter("failure"))


def test_rule_tests_failure_shows_expected_versus_actual(tmp_path: Path) -> None:
    """A case expecting the wrong count fails with exit 1, a per-rule diff naming the rule,
    the expected and actual counts, and a JUnit failure element carrying the diff."""
    rules, _ = stop_logging_tree(tmp_path, expect_match=2)
    junit = tmp_path / "junit.xml"
    result = run("test", str(rules), "--junit", str(junit))
    assert result.exit_code == 1
    assert "FAIL" in result.stdout
    assert f"CloudTrail Logging Stopped [{STOP_LOGGING_ID}]: expected 2 alert(s), got 1" in (
        result.stdout
    )
    assert "1/2 case(s) passed, 1 failed" in result.stdout
    failures = list(ET.parse(junit).getroot().iter("failure"))
    assert len(failures) == 1
    assert "expected 2 alert(s), got 1" in (failures[0].text or "")


def test_rule_tests_correlation_cases(tmp_path: Path) -> None:
    """A correlation's cases run through the correlation engine: three reads alert once,
    two reads do not, and the silent base rule raises nothing of its own."""
    rules = tmp_path / "detections" / "rules"
    tests = tmp_path / "detections" / "tests"
    write(rules / "aws" / "burst.yml", BURST)
    read = record("cloudtrail", "secretsmanager_getsecretvalue")
    case_three = {"repeat": 3, "every": "30s", "record": read}
    case_two = {"repeat": 2, "every": "30s", "record": read}
    cases = {
        "cases": [
            {"name": "three reads", "source": "cloudtrail", "events": [case_three], "expect": 1},
            {"name": "two reads", "source": "cloudtrail", "events": [case_two], "expect": 0},
        ]
    }
    write(tests / "aws" / "burst.yml", json.dumps(cases))
    result = run("test", str(tests))  # the tests side works too (mirrored to rules/)
    assert result.exit_code == 0, result.output
    assert "2/2 case(s) passed" in result.stdout


def test_rule_tests_report_orphans_and_missing_tests(tmp_path: Path) -> None:
    """A rule without test file and a test file without rule are load errors (exit 1)."""
    rules, tests = stop_logging_tree(tmp_path)
    write(rules / "aws" / "untested.yml", STOP_LOGGING.replace(STOP_LOGGING_ID, BURST_ID))
    write(tests / "aws" / "orphan.yml", "cases: []\n")
    result = run("test", str(rules))
    assert result.exit_code == 1
    assert "untested.yml" in result.stderr
    assert "orphan test" in result.stderr


def test_rule_tests_report_each_orphan_once(tmp_path: Path) -> None:
    """An orphan test file is one load error, in one wording, not one per check that sees it."""
    rules, tests = stop_logging_tree(tmp_path)
    write(tests / "aws" / "orphan.yml", "cases: []\n")
    result = run("test", str(rules))
    assert result.exit_code == 1
    orphan_lines = [line for line in result.stderr.splitlines() if "orphan.yml" in line]
    assert len(orphan_lines) == 1, orphan_lines
    assert "1 load error(s)" in result.stdout


def test_rule_tests_single_rule_file(tmp_path: Path) -> None:
    """A single rule file runs the cases of its mirrored test file only."""
    rules, _ = stop_logging_tree(tmp_path)
    result = run("test", str(rules / "aws" / "stop_logging.yml"))
    assert result.exit_code == 0, result.output
    assert "2/2 case(s) passed" in result.stdout


def test_rule_tests_without_mirror_is_a_usage_error(tmp_path: Path) -> None:
    """A directory with no rules/tests component and no --tests is a usage error."""
    write(tmp_path / "x" / "stop.yml", STOP_LOGGING)
    result = run("test", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert "--tests" in result.output


def test_mirror_and_case_roots() -> None:
    """The last rules/tests component is swapped; either side resolves to (rules, tests)."""
    assert mirror(Path("d/rules/aws/a.yml")) == Path("d/tests/aws/a.yml")
    assert mirror(Path("tests/d/rules/x")) == Path("tests/d/tests/x")
    assert mirror(Path("d/other")) is None
    assert case_roots(Path("d/tests/aws")) == (Path("d/rules/aws"), Path("d/tests/aws"))
    assert case_roots(Path("d/rules")) == (Path("d/rules"), Path("d/tests"))
    assert case_roots(Path("x"), Path("y")) == (Path("x"), Path("y"))


# --------------------------------------------------------------------------------------
# convert
# --------------------------------------------------------------------------------------

KIBANA_FIELDS = (
    "rule_id",
    "name",
    "description",
    "type",
    "language",
    "query",
    "risk_score",
    "severity",
    "interval",
    "from",
    "enabled",
    "threat",
    "tags",
    "references",
    "false_positives",
    "version",
)


def kibana_rules(text: str) -> list[dict[str, Any]]:
    """Parse NDJSON strictly: one JSON object per non-empty line, no blank lines."""
    lines = text.splitlines()
    assert lines and all(line.strip() for line in lines)
    return [json.loads(line) for line in lines]


def test_convert_lucene_applies_the_pipeline(tmp_path: Path) -> None:
    """With a processing pipeline the Lucene query uses ECS names, not the native ones."""
    rules = write(tmp_path / "rules" / "stop.yml", STOP_LOGGING).parent
    pipeline = write(tmp_path / "pipelines" / "cloudtrail.yml", PIPELINE)
    result = run("convert", "--target", "lucene", str(rules), "--pipeline", str(pipeline))
    assert result.exit_code == 0, result.output
    assert "event.action:(StopLogging OR DeleteTrail)" in result.stdout
    assert "user.name:terraform" in result.stdout
    assert "eventName" not in result.stdout
    assert f"# CloudTrail Logging Stopped ({STOP_LOGGING_ID})" in result.stdout


def test_convert_without_pipeline_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without detections/pipelines a warning says field names are left as written."""
    rules = write(tmp_path / "rules" / "stop.yml", STOP_LOGGING).parent
    monkeypatch.chdir(tmp_path)
    result = run("convert", "-t", "lucene", str(rules))
    assert result.exit_code == 0
    assert "no processing pipeline" in result.stderr
    assert "eventName:(StopLogging OR DeleteTrail)" in result.stdout


def test_convert_lucene_skips_correlations_with_reason(tmp_path: Path) -> None:
    """Lucene cannot express a correlation: it is listed as skipped with the backend's
    reason and counted; the silent building block has no query of its own; exit 0."""
    write(tmp_path / "burst.yml", BURST)
    result = run("convert", "-t", "lucene", str(tmp_path), "-f", "json")
    assert result.exit_code == 0, result.output
    assert as_json(result) == []
    assert "skipped [event_count] Secret Read Burst" in result.stderr
    assert "does not support correlation" in result.stderr
    assert "0 rule(s) converted to lucene (0 queries), 1 correlation(s) skipped" in result.stderr


def test_convert_esql_converts_correlations_and_sets_indices(tmp_path: Path) -> None:
    """ES|QL converts an event_count correlation (stats by the group-by field, mapped to
    its ECS name by the default pipelines) and searches the indices given with --index."""
    write(tmp_path / "burst.yml", BURST)
    result = run("convert", "-t", "esql", str(tmp_path), "--index", "logs-aws-*", "-f", "json")
    assert result.exit_code == 0, result.output
    [item] = as_json(result)
    assert item["id"] == BURST_ID
    assert item["type"] == "event_count"
    query = item["queries"][0]
    assert query.startswith("from logs-aws-*")
    assert "by timebucket, aws.cloudtrail.user_identity.arn" in query
    assert "userIdentity" not in query
    assert ">= 3" in query


def test_convert_eql_writes_output_file(tmp_path: Path) -> None:
    """EQL output (ECS field names through the default pipelines) goes to --output; stdout
    stays empty."""
    rules = write(tmp_path / "rules" / "stop.yml", STOP_LOGGING).parent
    target = tmp_path / "out" / "rules.eql"
    result = run("convert", "-t", "eql", str(rules), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    text = target.read_text()
    assert 'any where event.dataset:"aws.cloudtrail"' in text
    assert 'event.provider:"cloudtrail.amazonaws.com"' in text
    assert "eventSource" not in text


def test_convert_kibana_is_importable_ndjson(tmp_path: Path) -> None:
    """Kibana output is NDJSON of Kibana Security rules with the fields import needs, a
    valid severity, an offline ATT&CK mapping, ECS fields from the pipeline; the
    correlation becomes an ES|QL rule."""
    write(tmp_path / "rules" / "stop.yml", STOP_LOGGING)
    write(tmp_path / "rules" / "burst.yml", BURST)
    pipeline = write(tmp_path / "cloudtrail.yml", PIPELINE)
    result = run(
        "convert", "-t", "kibana", str(tmp_path / "rules"), "-p", str(pipeline), "--index", "ecs-*"
    )
    assert result.exit_code == 0, result.output
    rules = {r["rule_id"]: r for r in kibana_rules(result.stdout)}
    assert set(rules) == {STOP_LOGGING_ID, BURST_ID}
    for rule in rules.values():
        assert all(name in rule for name in KIBANA_FIELDS), rule
        assert rule["severity"] in ("low", "medium", "high", "critical")
        assert 0 <= rule["risk_score"] <= 100
    stop = rules[STOP_LOGGING_ID]
    assert (stop["type"], stop["language"]) == ("query", "lucene")
    assert stop["index"] == ["ecs-*"]
    assert "event.action:(StopLogging OR DeleteTrail)" in stop["query"]
    assert stop["severity"] == "high"
    [threat] = stop["threat"]
    assert threat["tactic"]["id"] == "TA0005"
    assert threat["technique"][0]["id"] == "T1562"
    assert threat["technique"][0]["subtechnique"][0]["id"] == "T1562.008"
    burst = rules[BURST_ID]
    assert (burst["type"], burst["language"]) == ("esql", "esql")
    assert burst["query"].startswith("from ecs-*")
    assert "user.id" in burst["query"]


def test_convert_kibana_over_corpus() -> None:
    """71 corpus rules convert to Kibana rules with unique rule_ids; the one using a field
    reference (``fieldref``) fails with Lucene's reason, so the run exits 1; ES|QL
    converts all 72."""
    result = run("convert", "-t", "kibana", str(CORPUS))
    assert result.exit_code == 1, result.stderr[-2000:]
    rules = kibana_rules(result.stdout)
    assert len(rules) == 71
    assert len({r["rule_id"] for r in rules}) == 71
    assert all(r["query"] for r in rules)
    assert "failed [sigma] AWS User Login Profile Was Modified" in result.stderr
    assert "can't handle field references" in result.stderr
    assert "71 rule(s) converted to kibana (71 queries), 0 correlation(s) skipped, 1 failed" in (
        result.stderr
    )
    esql = run("convert", "-t", "esql", str(CORPUS), "-f", "json")
    assert esql.exit_code == 0, esql.stderr
    assert len(as_json(esql)) == 72


def test_convert_project_rules_every_target() -> None:
    """The project's rules convert to every target without a failure (skips allowed)."""
    for target in ("lucene", "esql", "eql", "kibana"):
        result = run("convert", "-t", target, str(DETECTIONS), "--config", str(EXAMPLE_CONFIG))
        assert result.exit_code == 0, (target, result.stderr[-2000:])
        assert ", 0 failed" in result.stderr


def test_convert_rejects_bad_target_and_pipeline(tmp_path: Path) -> None:
    """An unknown target or an invalid pipeline file is a usage error (exit 2)."""
    assert run("convert", "-t", "splunk", str(CORPUS)).exit_code == 2
    bad = write(tmp_path / "bad.yml", "transformations: [{type: no_such_transformation}]\n")
    result = run("convert", "-t", "lucene", str(CORPUS), "-p", str(bad))
    assert result.exit_code == 2
    assert "invalid processing pipeline" in result.output


def test_convert_kibana_keeps_attack_mapping_of_every_pack_rule() -> None:
    """Every pack rule tagged with an ATT&CK tactic (``attack.stealth`` and
    ``attack.defense-impairment`` included) keeps a Kibana ``threat`` entry per tactic."""
    result = run("convert", "-t", "kibana", str(DETECTIONS), "--config", str(EXAMPLE_CONFIG))
    assert result.exit_code == 0, result.stderr[-2000:]
    lost = []
    for rule in kibana_rules(result.stdout):
        tactics = {t for t in rule["tags"] if re.fullmatch(r"attack-[a-z-]+", t)}
        if len(rule.get("threat", [])) != len(tactics):
            lost.append((rule["name"], sorted(tactics), rule.get("threat")))
    assert not lost, lost


def test_attack_threat_maps_v19_tactics() -> None:
    """ATT&CK v19's Stealth keeps TA0005; Defense Impairment is TA0112."""
    tags = [SigmaRuleTag("attack", "stealth"), SigmaRuleTag("attack", "defense-impairment")]
    ids = [t["tactic"]["id"] for t in attack_threat(tags, {})]
    assert ids == ["TA0005", "TA0112"]


def test_attack_threat_maps_tactics_offline() -> None:
    """Tactic tags map to their ATT&CK ids; techniques get names when given, else ids."""
    tags = [
        SigmaRuleTag("attack", "credential-access"),
        SigmaRuleTag("attack", "t1552.004"),
        SigmaRuleTag("cve", "2024-1"),
    ]
    [threat] = attack_threat(tags, {"T1552": "Unsecured Credentials"})
    assert threat["tactic"]["id"] == "TA0006"
    technique = threat["technique"][0]
    assert (technique["id"], technique["name"]) == ("T1552", "Unsecured Credentials")
    assert technique["subtechnique"][0]["name"] == "T1552.004"


# --------------------------------------------------------------------------------------
# explain
# --------------------------------------------------------------------------------------


def test_explain_match_by_rule_file(tmp_path: Path) -> None:
    """A matching record: exit 0, MATCH, the held selection and the actual values."""
    rule = write(tmp_path / "stop.yml", STOP_LOGGING)
    event = write(
        tmp_path / "event.json", json.dumps(record("cloudtrail", "cloudtrail_stoplogging"))
    )
    result = run("explain", str(rule), str(event))
    assert result.exit_code == 0, result.output
    assert "MATCH" in result.stdout
    assert "selection: held" in result.stdout
    assert "eventName" in result.stdout
    assert "'StopLogging'" in result.stdout
    assert "filter_automation: did not hold" in result.stdout


def test_explain_no_match_shows_why(tmp_path: Path) -> None:
    """A filtered record: exit 1; the filter held because userIdentity.userName is terraform."""
    write(tmp_path / "rules" / "stop.yml", STOP_LOGGING)
    doc = record("cloudtrail", "cloudtrail_stoplogging")
    doc["userIdentity"]["userName"] = "terraform"
    result = run(
        "explain", STOP_LOGGING_ID, "-", "--rules", str(tmp_path / "rules"), stdin=json.dumps(doc)
    )
    assert result.exit_code == 1, result.output
    assert "no match" in result.stdout
    assert "filter_automation: held" in result.stdout
    assert "userIdentity.userName" in result.stdout
    assert "'terraform'" in result.stdout


def test_explain_absent_field_and_lookup_by_title(tmp_path: Path) -> None:
    """A record of another source: the rule does not apply, fields are shown as absent."""
    write(tmp_path / "stop.yml", STOP_LOGGING)
    event = write(tmp_path / "vault.json", json.dumps(record("vault", "kv_read_request")))
    result = run("explain", "CloudTrail Logging Stopped", str(event), "-r", str(tmp_path))
    assert result.exit_code == 1
    assert "does not apply" in result.stdout
    assert "absent" in result.stdout


def test_explain_correlation_explains_its_rules(tmp_path: Path) -> None:
    """For a correlation the referenced detection rules are explained against the record."""
    write(tmp_path / "burst.yml", BURST)
    event = write(
        tmp_path / "read.json", json.dumps(record("cloudtrail", "secretsmanager_getsecretvalue"))
    )
    result = run("explain", BURST_ID, str(event), "-r", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "correlation is stateful" in result.stdout
    assert "Secret Read" in result.stdout
    assert "MATCH" in result.stdout


def test_explain_usage_errors(tmp_path: Path) -> None:
    """Unknown rule, missing or non-JSON event, and an unknown source exit 2."""
    write(tmp_path / "stop.yml", STOP_LOGGING)
    event = write(tmp_path / "e.json", json.dumps(record("cloudtrail", "cloudtrail_stoplogging")))
    assert run("explain", "no-such-rule", str(event), "-r", str(tmp_path)).exit_code == 2
    assert run("explain", STOP_LOGGING_ID, str(tmp_path / "x"), "-r", str(tmp_path)).exit_code == 2
    not_json = write(tmp_path / "bad.json", "{")
    assert run("explain", STOP_LOGGING_ID, str(not_json), "-r", str(tmp_path)).exit_code == 2
    result = run("explain", STOP_LOGGING_ID, str(event), "-r", str(tmp_path), "-s", "nope")
    assert result.exit_code == 2


def test_help_texts() -> None:
    """Every subcommand has help text."""
    for command in ("validate", "list", "test", "convert", "explain"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert "Usage" in result.output
