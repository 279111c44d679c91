"""Conditions, keywords, field resolution, log-source scoping and Sigma filters."""

from __future__ import annotations

import uuid
from pathlib import Path

from engine_helpers import GITHUB, event, fires, load_one, rule_text, write

from detector.detect import DetectionEngine, load_rules
from detector.models import LogSource


def test_one_of_and_all_of_patterns(tmp_path: Path) -> None:
    """``1 of sel_*`` needs any, ``all of sel_*`` needs every matching detection."""
    body = """
    sel_a:
        a: 1
    sel_b:
        b: 2
    other:
        c: 3
    condition: {cond}
    """
    one = load_one(tmp_path, body.format(cond="1 of sel_* and not other"))
    every = load_one(tmp_path, body.format(cond="all of sel_*"))
    assert fires(one, event({"a": 1}))
    assert not fires(one, event({"a": 1, "c": 3}))
    assert not fires(every, event({"a": 1}))
    assert fires(every, event({"a": 1, "b": 2}))


def test_them_excludes_underscore_detections(tmp_path: Path) -> None:
    """``1 of them`` ignores detections whose names start with ``_``."""
    rules = load_one(
        tmp_path,
        """
        sel:
            a: 1
        _hidden:
            b: 2
        condition: 1 of them
        """,
    )
    assert fires(rules, event({"a": 1}))
    assert not fires(rules, event({"b": 2}))


def test_precedence_and_parentheses(tmp_path: Path) -> None:
    """``not`` binds tighter than ``and``, which binds tighter than ``or``."""
    body = """
    a:
        a: 1
    b:
        b: 1
    c:
        c: 1
    condition: {cond}
    """
    plain = load_one(tmp_path, body.format(cond="a or b and not c"))
    grouped = load_one(tmp_path, body.format(cond="(a or b) and not c"))
    ev = event({"a": 1, "c": 1})
    assert fires(plain, ev)
    assert not fires(grouped, ev)


def test_list_of_conditions_is_or(tmp_path: Path) -> None:
    """A list of conditions matches when any of them does."""
    rules = load_one(
        tmp_path,
        """
        a:
            a: 1
        b:
            b: 1
        condition:
            - a
            - b
        """,
    )
    assert fires(rules, event({"b": 1}))
    assert not fires(rules, event({"c": 1}))


def test_list_of_maps_is_or(tmp_path: Path) -> None:
    """A detection that is a list of maps matches when any map does (each map is AND)."""
    rules = load_one(
        tmp_path,
        """
        sel:
            - a: 1
              b: 2
            - c: 3
        condition: sel
        """,
    )
    assert fires(rules, event({"a": 1, "b": 2}))
    assert fires(rules, event({"c": 3}))
    assert not fires(rules, event({"a": 1}))


def test_keywords_search_every_string(tmp_path: Path) -> None:
    """Keywords match inside any string value of the record, nested ones included."""
    rules = load_one(
        tmp_path,
        """
        keywords:
            - 'mimikatz'
            - 'sekurlsa::*'
        condition: keywords
        """,
    )
    assert fires(rules, event({"a": {"b": ["x", "run Mimikatz.exe"]}}))
    assert fires(rules, event({"cmd": "sekurlsa::logonpasswords"}))
    assert not fires(rules, event({"cmd": "notepad", "mimikatz_key_is_not_a_value": 1}))


def test_keywords_all(tmp_path: Path) -> None:
    """``'|all'`` keywords need every value somewhere in the record."""
    rules = load_one(
        tmp_path,
        """
        keywords:
            '|all':
                - 'OabVirtualDirectory'
                - ' -ExternalUrl '
        condition: keywords
        """,
    )
    assert fires(rules, event({"a": "Set-OabVirtualDirectory", "b": "x -ExternalUrl y"}))
    assert not fires(rules, event({"a": "Set-OabVirtualDirectory"}))


def test_keyword_and_field_selection(tmp_path: Path) -> None:
    """Keywords combine with field selections."""
    rules = load_one(
        tmp_path,
        """
        sel:
            eventName: PutObject
        keywords:
            - secret
        condition: sel and keywords
        """,
    )
    assert fires(rules, event({"eventName": "PutObject", "key": "my-SECRET.txt"}))
    assert not fires(rules, event({"eventName": "GetObject", "key": "secret"}))


def test_dotted_names(tmp_path: Path) -> None:
    """Dotted names walk nested objects and lists of objects, or name a literal dotted key."""
    rules = load_one(
        tmp_path,
        "sel:\n    userIdentity.sessionContext.sessionIssuer.type: Role\ncondition: sel",
    )
    nested = {"userIdentity": {"sessionContext": {"sessionIssuer": {"type": "Role"}}}}
    assert fires(rules, event(nested))
    assert fires(rules, event({"userIdentity.sessionContext.sessionIssuer.type": "role"}))
    assert not fires(rules, event({"userIdentity": {"type": "Role"}}))
    listed = load_one(tmp_path, "sel:\n    items.name: b\ncondition: sel")
    assert fires(listed, event({"items": [{"name": "a"}, {"name": "b"}]}))
    assert not fires(listed, event({"items": [{"name": "a"}, {"other": "b"}]}))
    deep = load_one(tmp_path, "sel:\n    a.b.c: x\ncondition: sel")
    assert fires(deep, event({"a": [{"b": [{"c": "y"}, {"c": "x"}]}]}))
    assert not fires(deep, event({"a": [{"b": "x"}]}))


def test_native_rules_only_see_their_log_source(tmp_path: Path) -> None:
    """A CloudTrail rule never fires on a GitHub event with the same fields."""
    rules = load_one(tmp_path, "sel:\n    action: repo.create\ncondition: sel")
    gh = load_one(
        tmp_path,
        "sel:\n    action: repo.create\ncondition: sel",
        logsource="product: github\n    service: audit",
    )
    ev = event({"action": "repo.create"}, logsource=GITHUB, family="ci")
    assert not fires(rules, ev)
    assert fires(gh, ev)


def test_ecs_rules_read_the_ecs_document(tmp_path: Path) -> None:
    """``product: ecs`` rules read ECS fields of every event; ``service`` narrows the family."""
    all_families = load_one(
        tmp_path, "sel:\n    user.name: alice\ncondition: sel", logsource="product: ecs"
    )
    ci_only = load_one(
        tmp_path,
        "sel:\n    user.name: alice\ncondition: sel",
        logsource="product: ecs\n    service: ci",
    )
    ct = event({"user.name": "bob"}, ecs={"user": {"name": "Alice"}})
    gh = event({}, ecs={"user": {"name": "alice"}}, logsource=GITHUB, family="ci")
    assert fires(all_families, ct)
    assert fires(all_families, gh)
    assert not fires(ci_only, ct)
    assert fires(ci_only, gh)
    assert not fires(all_families, event({"user": {"name": "alice"}}, ecs={}))


def test_unknown_log_source_of_event_still_gets_ecs_rules(tmp_path: Path) -> None:
    """An event from a log source no rule names is still tested by ECS rules of its family."""
    rules = load_one(
        tmp_path, "sel:\n    event.action: x\ncondition: sel", logsource="product: ecs"
    )
    ev = event({}, ecs={"event": {"action": "x"}}, logsource=LogSource("new", "thing"))
    assert fires(rules, ev)


def test_matches_name_their_selections(tmp_path: Path) -> None:
    """A match lists the rule's detections that held, not the ones that did not."""
    rules = load_one(
        tmp_path,
        """
        sel_a:
            a: 1
        sel_b:
            b: 1
        filter:
            c: 1
        condition: 1 of sel_* and not filter
        """,
    )
    (match,) = DetectionEngine(rules).evaluate(event({"a": 1}))
    assert match.selections == ("sel_a",)


def _filter_doc(rules_ref: str, logsource: str = "product: aws\n    service: cloudtrail") -> str:
    return (
        "title: Exclude automation\n"
        f"id: {uuid.uuid4()}\n"
        f"logsource:\n    {logsource}\n"
        "filter:\n"
        f"    rules: {rules_ref}\n"
        "    selection:\n"
        "        userIdentity.type: AWSService\n"
        "    condition: not selection\n"
    )


def test_filter_document_excludes_events(tmp_path: Path) -> None:
    """A Sigma filter naming a rule adds its exclusion to that rule only."""
    rid, other = str(uuid.uuid4()), str(uuid.uuid4())
    write(tmp_path, "a.yml", rule_text("sel:\n    eventName: X\ncondition: sel", rule_id=rid))
    write(
        tmp_path,
        "b.yml",
        rule_text("sel:\n    eventName: X\ncondition: sel", rule_id=other, title="Other"),
    )
    write(tmp_path, "filters/f.yml", _filter_doc(f"\n        - {rid}"))
    rules = load_rules([tmp_path])
    assert not rules.errors, [str(e) for e in rules.errors]
    engine = DetectionEngine(rules)
    service = event({"eventName": "X", "userIdentity": {"type": "AWSService"}})
    human = event({"eventName": "X", "userIdentity": {"type": "IAMUser"}})
    assert [m.rule.id for m in engine.evaluate(service)] == [other]
    assert sorted(m.rule.id for m in engine.evaluate(human)) == sorted([rid, other])


def test_filter_any_applies_by_log_source(tmp_path: Path) -> None:
    """``rules: any`` applies to every rule of the filter's log source and no other."""
    write(tmp_path, "a.yml", rule_text("sel:\n    eventName: X\ncondition: sel"))
    gh = write(
        tmp_path,
        "g.yml",
        rule_text(
            "sel:\n    action: x\ncondition: sel",
            logsource="product: github\n    service: audit",
        ),
    )
    write(tmp_path, "f.yml", _filter_doc("any"))
    rules = load_rules([tmp_path])
    assert not rules.errors, [str(e) for e in rules.errors]
    assert not fires(rules, event({"eventName": "X", "userIdentity": {"type": "AWSService"}}))
    gh_event = event(
        {"action": "x", "userIdentity": {"type": "AWSService"}}, logsource=GITHUB, family="ci"
    )
    assert fires(rules, gh_event), gh
