"""The bundled SigmaHQ pack: loaded by default beside the project's pack, with its shipped
tuning (rules.disabled), documented rule by rule, and quiet on the scenario's background."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import yaml
from conftest import pack_rules
from test_scenario import attack_ids, events, truth

from detector.app.authoring.cases import detect_all, normalize_all
from detector.app.policy import effective_rules
from detector.app.settings import RulesConfig
from detector.app.sigmahq import SIGMAHQ_DISABLED, SIGMAHQ_RULES
from detector.detect import RuleSet, load_rules
from detector.models import Alert

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / SIGMAHQ_RULES
DAY2 = 1795478400.0  # 2026-11-24T00:00:00Z, the scenario's attack day


@cache
def default_rules() -> RuleSet:
    """The rules ``detector run`` and ``detector replay`` use with default settings (and the
    example organization's placeholder values)."""
    config = RulesConfig()
    ruleset = pack_rules([ROOT / p for p in config.paths])
    assert not ruleset.errors, [str(e) for e in ruleset.errors]
    effective, warnings = effective_rules(config, ruleset)
    assert not warnings, [str(w) for w in warnings]
    return effective.ruleset


@cache
def sigmahq_ids() -> frozenset[str]:
    return frozenset(r.info.id for r in load_rules([PACK]).rules)


@cache
def default_alerts() -> tuple[Alert, ...]:
    return tuple(detect_all(default_rules(), events()))


def test_default_paths_load_both_packs() -> None:
    """By default the project's pack and the SigmaHQ pack load; the shipped tuning is the
    default of rules.disabled."""
    config = RulesConfig()
    assert config.paths == [Path("detections/rules"), SIGMAHQ_RULES]
    assert set(config.disabled) == set(SIGMAHQ_DISABLED)


def test_every_sigmahq_rule_loads_and_the_tuning_names_real_rules() -> None:
    """Every vendored rule loads in the engine, and every rule the tuning turns off exists in
    the pack under the title recorded beside its id."""
    files = sorted(PACK.rglob("*.yml"))
    ruleset = load_rules([PACK])
    assert not ruleset.errors, [str(e) for e in ruleset.errors]
    assert len(ruleset.rules) == len(files) >= 70
    titles = {r.info.id: r.info.title for r in ruleset.rules}
    assert {i: titles.get(i) for i in SIGMAHQ_DISABLED} == SIGMAHQ_DISABLED


def test_enabled_sigmahq_rules_run_by_default_and_disabled_ones_do_not() -> None:
    """With default settings every SigmaHQ rule outside the tuning runs, none inside it."""
    running = {r.info.id for r in default_rules().rules} - default_rules().silent
    assert sigmahq_ids() - set(SIGMAHQ_DISABLED) <= running
    assert not running & set(SIGMAHQ_DISABLED)


def test_tuning_documented_rule_by_rule() -> None:
    """DETECTIONS.md lists exactly the rules of the shipped tuning, each with a reason."""
    text = (ROOT / "DETECTIONS.md").read_text(encoding="utf-8")
    section = text.split("### Rules off by default", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([0-9a-f-]{36})` \| ([^|]+) \| ([^|]+) \|$", section, re.M)
    assert {rid: title.strip() for rid, title, _ in rows} == SIGMAHQ_DISABLED
    assert all(len(why.strip()) > 20 for _, _, why in rows)


def test_quiet_day_raises_no_sigmahq_alert() -> None:
    """The scenario's first day (background only) raises no alert of a SigmaHQ rule under
    the default settings, and the background of both days raises no alert at all."""
    quiet = [e for e in events() if e.timestamp < DAY2]
    assert quiet and all(i not in attack_ids() for e in quiet for i in [e.id])
    sigma = [a for a in detect_all(default_rules(), quiet) if a.rule.id in sigmahq_ids()]
    assert not sigma, sorted({a.rule.title for a in sigma})
    noisy = {a.rule.title for a in default_alerts() if set(a.event_ids) - attack_ids()}
    assert not noisy, sorted(noisy)


def test_default_rules_detect_every_story() -> None:
    """Under the default settings every story of the scenario still raises all its rules."""
    for name, story in truth()["stories"].items():
        ids = set(story["event_ids"])
        fired = {a.rule.title for a in default_alerts() if ids & set(a.event_ids)}
        assert set(story["expected_rules"]) <= fired, name


def test_project_pack_alone_has_no_warning_about_the_tuning() -> None:
    """``--rules detections/rules`` loads only the project's pack: the shipped tuning names
    rules that are not loaded, which is not worth a warning; a user's own unknown name is."""
    ruleset = load_rules([ROOT / "detections" / "rules"])
    _, warnings = effective_rules(RulesConfig(), ruleset)
    assert warnings == []
    _, warnings = effective_rules(RulesConfig(disabled=["no_such_rule"]), ruleset)
    assert [str(w) for w in warnings] == [
        "rules.disabled or rules.level_overrides names 'no_such_rule', which is not loaded"
    ]


def test_stopped_or_deleted_trail_detected_by_default() -> None:
    """StopLogging and DeleteTrail raise an alert with the default settings (the issue's
    "a stopped trail is missed by default")."""
    cases = yaml.safe_load(
        (
            ROOT / "detections/tests/cloudtrail/cloudtrail_trail_stopped_deleted_or_weakened.yml"
        ).read_text(encoding="utf-8")
    )["cases"]
    for case in cases[:2]:
        assert case["events"][0]["eventName"] in {"StopLogging", "DeleteTrail"}
        got, errors = normalize_all(case["events"], "cloudtrail")
        assert not errors
        titles = [a.rule.title for a in detect_all(default_rules(), got)]
        assert titles == ["CloudTrail Trail Stopped, Deleted Or Weakened"], case["name"]
