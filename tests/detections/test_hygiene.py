"""Hygiene of the rule pack: collect every violation over the whole tree, then fail once.

Checks: ids unique and UUIDs, required attributes, status/level/date values, ATT&CK tags
(known tactics, technique ids from the project's ATT&CK table), references are https URLs, names of
files and base rules, a test file for every rule file and no orphan test file, each test
file with a matching and a non-matching case (and, for correlation and first-seen rules, a
case just outside the window), everything loads in the engine (with the example placeholder
values), nothing duplicates the SigmaHQ corpus, and no organization literal is left in a rule
(see :func:`organization_literals`).
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from conftest import EXAMPLE_CONFIG, pack_rules

from detector.app.authoring.attack import TACTICS, TECHNIQUES
from detector.app.rulepack import configured_placeholders
from detector.app.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "detections" / "rules"
TESTS = ROOT / "detections" / "tests"
CORPUS = ROOT / "detections" / "sigmahq"

FAMILIES = {
    "cloudtrail": ("cloudtrail_",),
    "registry": ("distribution_", "harbor_", "ecs_"),
    "ci": ("github_", "gitlab_"),
    "vault": ("vault_",),
    "cross": ("ecs_",),
}
LEVELS = {"informational", "low", "medium", "high", "critical"}
STATUSES = {"experimental", "test", "stable"}
REQUIRED = (
    "title",
    "id",
    "status",
    "description",
    "references",
    "author",
    "date",
    "tags",
    "level",
    "falsepositives",
)
FILE_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+\.yml$")
RULE_NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")
TECHNIQUE_TAG = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def documents(path: Path) -> list[dict[str, Any]]:
    """The YAML documents of a rule file (dates kept as text)."""
    return [d for d in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader) if d]


class _Loader(yaml.SafeLoader):
    """Safe loader that leaves timestamps as strings, as Sigma tools read them."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


#: Example organization values (examples/detector.yaml): none may appear in a rule.
EXAMPLE_VALUES = sorted(
    {v for vs in configured_placeholders(load_settings(EXAMPLE_CONFIG).rules).values() for v in vs}
)
#: A whole address space is not an organization value (``source.ip|cidr: 0.0.0.0/0`` = "an IPv4").
ANY_ADDRESS = {"0.0.0.0/0", "::/0"}
ACCOUNT_ID = re.compile(r"(?<!\d)\d{12}(?!\d)")
BOT_NAME = re.compile(r"\[bot\]|(?:^|[-_.])bot(?:$|[-_.])", re.IGNORECASE)


def _detection_values(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "condition":
                yield from _detection_values(value)
    elif isinstance(node, list):
        for item in node:
            yield from _detection_values(item)
    elif node is not None:
        yield str(node)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return value not in ANY_ADDRESS


def organization_literals(text: str, docs: list[dict[str, Any]], where: str) -> list[str]:
    """Organization values written into a rule instead of a placeholder.

    In detection values: an IP address or network (other than a whole address space), a
    12-digit number (an AWS account id), a bot account name (``...[bot]``, ``...-bot``).
    Anywhere in the file: a value of the example settings (the ``acme`` organization, its
    accounts, networks and bots).
    """
    out = []
    for doc in docs:
        for value in _detection_values(doc.get("detection", {})):
            if _is_address(value) or ACCOUNT_ID.search(value) or BOT_NAME.search(value):
                out.append(f"{where}: organization literal {value!r}: use a placeholder")
    for value in EXAMPLE_VALUES:
        if re.search(rf"(?<![\w.-]){re.escape(value)}(?![\w-])", text, re.IGNORECASE):
            out.append(f"{where}: example organization value {value!r} in the rule file")
    return out


def check_rule(
    doc: dict[str, Any],
    where: str,
    seen_ids: dict[str, str],
    seen_names: dict[str, str],
    seen_titles: dict[str, str],
) -> list[str]:
    """Violations of one rule document."""
    out: list[str] = []
    for key in REQUIRED:
        if not doc.get(key):
            out.append(f"{where}: missing or empty '{key}'")
    if "correlation" not in doc and "logsource" not in doc:
        out.append(f"{where}: neither 'logsource' nor 'correlation'")
    rid = str(doc.get("id", ""))
    try:
        if str(uuid.UUID(rid)) != rid:
            out.append(f"{where}: id {rid!r} is not a lower-case canonical UUID")
    except ValueError:
        out.append(f"{where}: id {rid!r} is not a UUID")
    if rid in seen_ids:
        out.append(f"{where}: id {rid} already used in {seen_ids[rid]}")
    seen_ids[rid] = where
    title = str(doc.get("title", ""))
    if title in seen_titles:
        out.append(f"{where}: title {title!r} already used in {seen_titles[title]}")
    seen_titles[title] = where
    name = doc.get("name")
    if name is not None:
        if not RULE_NAME.match(str(name)):
            out.append(f"{where}: name {name!r} is not snake_case")
        if name in seen_names:
            out.append(f"{where}: name {name!r} already used in {seen_names[name]}")
        seen_names[str(name)] = where
    if doc.get("status") not in STATUSES:
        out.append(f"{where}: status {doc.get('status')!r} not in {sorted(STATUSES)}")
    if doc.get("level") not in LEVELS:
        out.append(f"{where}: level {doc.get('level')!r} not in {sorted(LEVELS)}")
    if doc.get("author") != "detector project":
        out.append(f"{where}: author must be 'detector project'")
    if not DATE.match(str(doc.get("date", ""))):
        out.append(f"{where}: date {doc.get('date')!r} is not YYYY-MM-DD")
    refs = doc.get("references") or []
    if not isinstance(refs, list) or not all(str(r).startswith("https://") for r in refs):
        out.append(f"{where}: references must be a list of https URLs")
    fps = doc.get("falsepositives")
    if not isinstance(fps, list) or not all(isinstance(f, str) and f for f in fps):
        out.append(f"{where}: falsepositives must be a list of sentences")
    tags = [str(t) for t in doc.get("tags") or []]
    tactics = [t for t in tags if t.startswith("attack.") and not TECHNIQUE_TAG.match(t)]
    techniques = [t for t in tags if TECHNIQUE_TAG.match(t)]
    for tag in tags:
        if not tag.startswith("attack."):
            out.append(f"{where}: tag {tag!r} is not an ATT&CK tag")
        elif TECHNIQUE_TAG.match(tag):
            if tag.removeprefix("attack.").upper() not in TECHNIQUES:
                out.append(f"{where}: technique {tag!r} is not in the known list of this test")
        elif tag.removeprefix("attack.") not in TACTICS:
            out.append(f"{where}: tactic {tag!r} is not an ATT&CK tactic")
    if len(set(tags)) != len(tags):
        out.append(f"{where}: duplicate tags")
    if not tactics or not techniques:
        out.append(f"{where}: needs at least one ATT&CK tactic and one technique tag")
    return out


def check_tests(test_file: Path, docs: list[dict[str, Any]], where: str) -> list[str]:
    """A test file must hold a matching case, a non-matching case and, for stateful rules,
    a case just outside the window."""
    out: list[str] = []
    data = yaml.safe_load(test_file.read_text(encoding="utf-8"))
    cases = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(cases, list) or not cases:
        return [f"{where}: no cases"]

    def total(case: dict[str, Any]) -> int:
        expect = case.get("expect", {})
        return expect if isinstance(expect, int) else sum(expect.values())

    if not any(total(c) > 0 for c in cases):
        out.append(f"{where}: no case where the rule matches")
    if not any(total(c) == 0 for c in cases):
        out.append(f"{where}: no case where the rule does not match")
    stateful = any("correlation" in d or "first_seen" in d for d in docs)
    if stateful and not any("just outside the window" in str(c.get("name", "")) for c in cases):
        out.append(f"{where}: correlation/first-seen rule without a just-outside-the-window case")
    return out


def collect_violations(
    rules: Path, tests: Path, min_rules: int = 40, min_stateful: int = 10
) -> list[str]:
    """Every hygiene violation of the rule tree ``rules`` and its test tree ``tests``."""
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    seen_titles: dict[str, str] = {}
    rule_files = sorted(p for p in rules.rglob("*") if p.is_file())
    stateful = 0
    for path in rule_files:
        rel = path.relative_to(rules)
        where = f"detections/rules/{rel}"
        if len(rel.parts) != 2 or rel.parts[0] not in FAMILIES:
            problems.append(f"{where}: must sit in one of {sorted(FAMILIES)}/")
        elif not FILE_NAME.match(path.name) or not path.name.startswith(FAMILIES[rel.parts[0]]):
            problems.append(
                f"{where}: file name must be snake_case <source>_<what>.yml with a "
                f"source prefix of {FAMILIES[rel.parts[0]]}"
            )
        try:
            docs = documents(path)
        except yaml.YAMLError as exc:
            problems.append(f"{where}: invalid YAML: {exc}")
            continue
        for i, doc in enumerate(docs):
            problems.extend(check_rule(doc, f"{where}#{i + 1}", seen_ids, seen_names, seen_titles))
        problems.extend(organization_literals(path.read_text(encoding="utf-8"), docs, where))
        if len(docs) > 1 and "correlation" not in docs[-1]:
            problems.append(f"{where}: a multi-document file must end with its correlation rule")
        for doc in docs[:-1]:
            if "name" not in doc:
                problems.append(f"{where}: base rule {doc.get('title')!r} needs a 'name'")
        stateful += any("correlation" in d or "first_seen" in d for d in docs)
        test_file = tests / rel
        if not test_file.is_file():
            problems.append(f"{where}: no test file detections/tests/{rel}")
        else:
            problems.extend(check_tests(test_file, docs, f"detections/tests/{rel}"))
    for test_file in sorted(p for p in tests.rglob("*") if p.is_file()):
        rel = test_file.relative_to(tests)
        if not (rules / rel).is_file():
            problems.append(f"detections/tests/{rel}: orphan test file (no rule file {rel})")
    if len(rule_files) < min_rules:
        problems.append(f"the pack has {len(rule_files)} rule files, at least {min_rules} expected")
    if stateful < min_stateful:
        problems.append(
            f"the pack has {stateful} correlation/first-seen files, "
            f"at least {min_stateful} expected"
        )
    loaded = pack_rules([rules])
    problems.extend(f"engine: {e}" for e in loaded.errors)
    corpus_ids = {str(d.get("id")) for p in CORPUS.rglob("*.yml") for d in documents(p)}
    problems.extend(f"id {i} is a SigmaHQ corpus id" for i in set(seen_ids) & corpus_ids)
    return problems


def test_rule_pack_hygiene() -> None:
    """The whole pack follows the conventions of DETECTIONS.md (all violations listed)."""
    problems = collect_violations(RULES, TESTS)
    assert not problems, f"{len(problems)} hygiene violation(s):\n" + "\n".join(problems)


BROKEN_RULE = """\
title: Broken Rule
id: 6c1f0e43-0f4b-4c39-9a61-2f2d6f6b8c11
status: experimental
description: A rule with hygiene problems.
references:
    - http://example.com/insecure
author: detector project
date: 2026-11-28
tags:
    - attack.defense-evasion
    - attack.t9999
logsource:
    product: github
    service: audit
detection:
    selection:
        action: repo.destroy
    condition: selection
falsepositives:
    - None.
level: severe
"""


def test_hygiene_reports_every_violation_at_once(tmp_path: Path) -> None:
    """A tree with several problems yields one message per problem, not just the first."""
    rules, tests = tmp_path / "rules", tmp_path / "tests"
    (rules / "ci").mkdir(parents=True)
    (tests / "ci").mkdir(parents=True)
    (rules / "ci" / "github_broken.yml").write_text(BROKEN_RULE)
    (rules / "ci" / "Github-Copy.yml").write_text(BROKEN_RULE)
    (tests / "ci" / "github_orphan.yml").write_text("cases: []\n")
    problems = "\n".join(collect_violations(rules, tests, min_rules=1, min_stateful=0))
    for expected in (
        "already used in",  # duplicate id and title
        "file name must be snake_case",
        "references must be a list of https URLs",
        "tactic 'attack.defense-evasion' is not an ATT&CK tactic",
        "technique 'attack.t9999' is not in the known list",
        "level 'severe'",
        "no test file",
        "orphan test file",
    ):
        assert expected in problems, expected


ORGANIZATION_RULE = """\
title: Literals
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: ConsoleLogin
    filter_office:
        sourceIPAddress|cidr: 172.16.0.0/12
    filter_accounts:
        userIdentity.accountId: '210987654321'
    filter_bots:
        userIdentity.userName:
            - deploy-bot
            - renovate[bot]
    filter_any:
        sourceIPAddress|cidr: 0.0.0.0/0
    condition: selection and not 1 of filter_*
description: Only acme repositories.
"""


def test_organization_literals_are_found() -> None:
    """A network, an account id, bot names and an example value are each reported; the whole
    address space, placeholders and ordinary values are not."""
    docs = list(yaml.safe_load_all(ORGANIZATION_RULE))
    found = organization_literals(ORGANIZATION_RULE, docs, "r.yml")
    assert found == [
        "r.yml: organization literal '172.16.0.0/12': use a placeholder",
        "r.yml: organization literal '210987654321': use a placeholder",
        "r.yml: organization literal 'deploy-bot': use a placeholder",
        "r.yml: organization literal 'renovate[bot]': use a placeholder",
        "r.yml: example organization value 'acme' in the rule file",
    ]
    clean = ORGANIZATION_RULE.replace("acme", "%github_orgs%")
    placeholders = {
        "detection": {"a": {"sourceIPAddress|expand": "%office_networks%"}, "condition": "a"}
    }
    assert organization_literals(clean, [placeholders], "r.yml") == []
