"""The loader collects every problem with its file and line, and keeps the good rules."""

from __future__ import annotations

import uuid
from pathlib import Path

from engine_helpers import event, fires, rule_text, write

from detector.detect import load_rules

GOOD = "sel:\n    eventName: X\ncondition: sel"


def _errors_for(rules_errors: tuple[object, ...], name: str) -> list[str]:
    return [str(e) for e in rules_errors if name in str(e)]


def test_every_error_is_collected_and_good_rules_load(tmp_path: Path) -> None:
    """Bad files/rules are all reported (one error each); the good rule still compiles."""
    write(tmp_path, "good.yml", rule_text(GOOD))
    write(tmp_path, "yaml_syntax.yml", "title: x\nfoo: bar: baz\nother: 1\n")
    write(tmp_path, "bad_modifier.yml", rule_text("sel:\n    a|nosuchmod: 1\ncondition: sel"))
    write(tmp_path, "bad_condition.yml", rule_text("sel:\n    a: 1\ncondition: sel and nope"))
    write(
        tmp_path,
        "windows.yml",
        rule_text(GOOD, logsource="product: windows\n    category: process_creation"),
    )
    write(tmp_path, "re2.yml", rule_text("sel:\n    a|re: 'foo(?=bar)'\ncondition: sel"))
    write(tmp_path, "placeholder.yml", rule_text("sel:\n    a|expand: '%nope%'\ncondition: sel"))
    write(
        tmp_path,
        "no_id.yml",
        "title: No id\nlogsource:\n    product: ecs\ndetection:\n"
        "    sel:\n        a: 1\n    condition: sel\n",
    )
    write(tmp_path, "not_a_mapping.yml", "- just\n- a list\n")
    rules = load_rules([tmp_path, tmp_path / "does_not_exist"])

    assert [r.info.title for r in rules.rules] == ["Test rule"]
    assert rules.rejected == len(rules.errors) == 9
    by_file = {Path(e.path).name if e.path else None: e for e in rules.errors}
    assert by_file["yaml_syntax.yml"].line == 2
    assert "invalid YAML" in str(by_file["yaml_syntax.yml"])
    assert "nosuchmod" in str(by_file["bad_modifier.yml"])
    assert by_file["bad_modifier.yml"].line == 9  # the "a|nosuchmod" line
    assert "nope" in str(by_file["bad_condition.yml"])
    assert "categories are not supported" in str(by_file["windows.yml"])
    assert "RE2" in str(by_file["re2.yml"])
    assert "placeholder %nope%" in str(by_file["placeholder.yml"])
    assert "no identifier" in str(by_file["no_id.yml"])
    assert "not a mapping" in str(by_file["not_a_mapping.yml"])
    assert "no such rule file" in str(by_file["does_not_exist"])


def test_overlapping_paths_load_each_file_once(tmp_path: Path) -> None:
    """Naming a directory and a file inside it does not load the file twice."""
    path = write(tmp_path, "sub/a.yml", rule_text(GOOD))
    rules = load_rules([tmp_path, path, tmp_path / "sub"])
    assert rules.errors == ()
    assert len(rules.rules) == 1


def test_duplicate_ids_reject_both_rules(tmp_path: Path) -> None:
    """Two rules sharing an id would share alert ids: both are rejected, loudly."""
    rid = str(uuid.uuid4())
    write(tmp_path, "a.yml", rule_text(GOOD, rule_id=rid, title="A"))
    write(tmp_path, "b.yml", rule_text(GOOD, rule_id=rid, title="B"))
    rules = load_rules([tmp_path])
    assert rules.rules == ()
    assert len(rules.errors) == 2
    assert all("multiple rules" in str(e) for e in rules.errors)


def test_style_findings_are_warnings(tmp_path: Path) -> None:
    """Validator findings that do not change the rule's meaning only warn."""
    write(
        tmp_path,
        "dangling.yml",
        rule_text("sel:\n    a: 1\nunused:\n    b: 2\ncondition: sel"),
    )
    rules = load_rules([tmp_path])
    assert len(rules.rules) == 1
    assert rules.errors == ()
    assert any("unused" in str(w) for w in rules.warnings)


def test_multi_document_file_locates_the_bad_rule(tmp_path: Path) -> None:
    """In a file with several rules, the error points at the bad rule's lines."""
    good = rule_text(GOOD, title="First")
    bad = rule_text("sel:\n    a|re: '(?<=x)y'\ncondition: sel", title="Second")
    path = write(tmp_path, "multi.yml", good + "---\n" + bad)
    rules = load_rules([path])
    assert [r.info.title for r in rules.rules] == ["First"]
    (error,) = rules.errors
    lines = path.read_text().splitlines()
    assert error.line is not None
    assert "(?<=x)y" in lines[error.line - 1]


CORRELATION = """title: {title}
id: {cid}
name: {name}
correlation:
    type: event_count
    rules:
        - {ref}
    group-by:
        - userIdentity.arn
    timespan: 5m
    condition:
        gte: 3
    generate: {generate}
"""


def test_correlations_are_handed_over_resolved(tmp_path: Path) -> None:
    """Correlations load with references resolved by name; silent base rules are marked."""
    base_id, cid = str(uuid.uuid4()), str(uuid.uuid4())
    write(tmp_path, "base.yml", rule_text(GOOD, rule_id=base_id, extra="name: base_rule\n"))
    write(
        tmp_path,
        "corr.yml",
        CORRELATION.format(
            title="Many X", cid=cid, name="many_x", ref="base_rule", generate="false"
        ),
    )
    rules = load_rules([tmp_path])
    assert rules.errors == ()
    (corr,) = rules.correlations
    assert str(corr.referenced_rules[0].rule.id) == base_id
    assert rules.names == {"base_rule": base_id, "many_x": cid}
    assert rules.info("many_x").type == "event_count"
    assert rules.info(base_id).title == "Test rule"
    assert not rules.generates(base_id)
    assert rules.generates(cid)
    assert not rules.rule(base_id).generates
    # The engine still reports the base rule's matches: correlations need them.
    assert fires(rules, event({"eventName": "X"}))


def test_generating_correlation_keeps_base_alerts(tmp_path: Path) -> None:
    """With ``generate: true`` the referenced rule keeps its own alerts."""
    base_id = str(uuid.uuid4())
    write(tmp_path, "base.yml", rule_text(GOOD, rule_id=base_id))
    write(
        tmp_path,
        "corr.yml",
        CORRELATION.format(
            title="Many X", cid=uuid.uuid4(), name="many_x", ref=base_id, generate="true"
        ),
    )
    rules = load_rules([tmp_path])
    assert rules.errors == ()
    assert rules.generates(base_id)


def test_correlation_with_missing_reference_is_rejected(tmp_path: Path) -> None:
    """A correlation naming a missing or rejected rule is rejected too, transitively."""
    write(
        tmp_path,
        "bad_base.yml",
        rule_text("sel:\n    a|re: '(?=x)'\ncondition: sel", extra="name: broken\n"),
    )
    write(
        tmp_path,
        "c1.yml",
        CORRELATION.format(title="C1", cid=uuid.uuid4(), name="c1", ref="broken", generate="false"),
    )
    write(
        tmp_path,
        "c2.yml",
        CORRELATION.format(title="C2", cid=uuid.uuid4(), name="c2", ref="c1", generate="false"),
    )
    rules = load_rules([tmp_path])
    assert rules.correlations == ()
    assert rules.rejected == 3
    assert any("broken" in str(e) and "c1.yml" in str(e) for e in rules.errors)
    assert any("c1" in str(e) and "c2.yml" in str(e) for e in rules.errors)
