"""The attack scenario of examples/: every story is detected by its expected rules and
nothing fires on the benign background."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from conftest import pack_rules

from detector.app.authoring.cases import detect_all, normalize_all
from detector.app.policy import effective_rules
from detector.app.settings import RulesConfig, SuppressionConfig
from detector.models import FAMILIES, Alert, Event
from detector.sinks.suppression import fold

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "examples" / "scenario"


@cache
def truth() -> dict[str, Any]:
    """The ground truth written by the generator."""
    data: dict[str, Any] = orjson.loads((SCENARIO / "ground_truth.json").read_bytes())
    return data


@cache
def events() -> tuple[Event, ...]:
    """Every record of the scenario, normalized (a failure here is a normalizer bug)."""
    out: list[Event] = []
    for family in FAMILIES:
        path = SCENARIO / "logs" / f"{family}.jsonl"
        records = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
        got, errors = normalize_all(records, family, path.name)
        assert not errors, [str(e) for e in errors[:5]]
        out.extend(got)
    return tuple(out)


@cache
def alerts() -> tuple[Alert, ...]:
    """The alerts of the project's rule pack over the whole scenario."""
    rules = pack_rules([ROOT / "detections" / "rules"])
    assert not rules.errors
    return tuple(detect_all(rules, events()))


def attack_ids() -> set[str]:
    return {i for story in truth()["stories"].values() for i in story["event_ids"]}


def test_ground_truth_names_real_events() -> None:
    """Every event id of the ground truth is the id of a normalized scenario event."""
    ids = {e.id for e in events()}
    missing = attack_ids() - ids
    assert not missing, sorted(missing)[:10]
    assert len(ids) == len(events()), "event ids are not unique"


def test_no_alert_on_benign_background() -> None:
    """No alert carries an event that is not part of an attack story."""
    attack = attack_ids()
    noisy = defaultdict(list)
    for alert in alerts():
        benign = [i for i in alert.event_ids if i not in attack]
        if benign or not alert.event_ids:
            noisy[alert.rule.title].append(benign[:3])
    assert not noisy, dict(noisy)


def test_every_story_detected_by_its_rules() -> None:
    """Each story raises at least one alert of every rule it lists, on its own events."""
    missed: dict[str, list[str]] = {}
    for name, story in truth()["stories"].items():
        ids = set(story["event_ids"])
        fired = {a.rule.title for a in alerts() if ids & set(a.event_ids)}
        gaps = [rule for rule in story["expected_rules"] if rule not in fired]
        if gaps:
            missed[name] = gaps
    assert not missed, missed
    assert len(truth()["stories"]) >= 6


def test_every_pack_rule_is_exercised_by_the_scenario() -> None:
    """Every rule of the pack that raises alerts of its own fires somewhere in the scenario."""
    rules = pack_rules([ROOT / "detections" / "rules"])
    alerting = {r.info.title for r in rules.rules if r.info.id not in rules.silent}
    alerting |= {str(c.title) for c in rules.correlations}
    fired = {a.rule.title for a in alerts()}
    assert sorted(alerting - fired) == []


@cache
def _example(name: str) -> ModuleType:
    """A script of examples/ imported as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _generator() -> ModuleType:
    return _example("generate_scenario")


def _report() -> ModuleType:
    return _example("scenario_report")


def test_report_attributes_every_alert_to_its_story() -> None:
    """The per-story report of the pack's alerts (one document each, as replay writes them
    without suppression) finds every story detected with all its expected rules and no
    document on the background."""
    report = _report().build_report(_report().alert_docs(fold(alerts())), truth())
    assert report.ok, _report().format_report(report)
    assert report.documents == report.alerts == len(alerts())
    assert [s.name for s in report.stories] == list(truth()["stories"])


#: Story and rule that keep two documents under suppression by user.name: two principals
#: (the sprayed IAM user, later the root user) each sign in without MFA from outside.
TWO_PRINCIPALS = {
    ("console_and_secrets_sweep", "Console Login Without MFA From Outside The Office Network")
}


def test_suppressed_scenario_gives_one_document_per_rule_and_story() -> None:
    """With the default rules (both packs, shipped tuning) and suppression as scripts/demo and
    docker-compose run it (user.name, one hour), every story is detected, nothing fires on
    the background, and each story holds at most one document per rule (two where two
    principals act), fewer documents than alerts."""
    config = RulesConfig(suppression=SuppressionConfig(enabled=True, group_by=["user.name"]))
    loaded = pack_rules([ROOT / p for p in config.paths])
    effective, _ = effective_rules(config, loaded)
    raised = detect_all(effective.ruleset, events())
    report = _report().build_report(_report().alert_docs(fold(raised)), truth())
    assert report.ok, _report().format_report(report)
    repeated = {
        (story.name, rule): count
        for story in report.stories
        for rule, count in story.documents.items()
        if count > 1
    }
    assert repeated == dict.fromkeys(TWO_PRINCIPALS, 2), repeated
    assert report.alerts == len(raised) > report.documents


def test_report_command_flags_a_missed_story_and_background(tmp_path: Path, capsys: Any) -> None:
    """Given replay output that names one story's event (a document folding three alerts) and
    one background event, the report prints the other stories as missed, lists the
    background document, and exits 1."""
    stories = truth()["stories"]
    first = next(iter(stories))
    background = next(e.id for e in events() if e.id not in attack_ids())
    docs = [
        {
            "rule": {"name": "Some Rule"},
            "event": {"reference": [stories[first]["event_ids"][0]]},
            "kibana": {"alert": {"suppression": {"docs_count": 2}}},
        },
        {"rule": {"name": "Noisy Rule"}, "event": {"reference": [background]}},
    ]
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs))
    assert _report().main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{first}: 1 document(s), 3 alert(s), 1 rule(s), detected" in out
    assert "Some Rule    1  (3 alerts)" in out
    assert "MISSED" in out and "Noisy Rule  1" in out
    assert f"total: 2 document(s) holding 4 alert(s); 1 of {len(stories)} stories detected" in out


def test_generator_reproduces_the_committed_files(tmp_path: Path) -> None:
    """Running the seeded generator again writes byte-identical files."""
    generator = _generator()
    generator.write(generator.generate(), tmp_path)
    for name in [f"logs/{f}.jsonl" for f in FAMILIES] + ["ground_truth.json"]:
        fresh = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        committed = hashlib.sha256((SCENARIO / name).read_bytes()).hexdigest()
        assert fresh == committed, f"{name} differs: run python examples/generate_scenario.py"
