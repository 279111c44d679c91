"""Exceptions and rule policy (``rules.disabled``, ``min_level``, ``statuses``,
``level_overrides``) applied to a loaded rule set, without touching the rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_helpers import event, write

from detector.detect import RuleSet, load_rules
from detector.detect.alerting import AlertPipeline
from detector.detect.exceptions import RuleException, load_exceptions
from detector.detect.policy import RulePolicy, apply_policy, unknown_references
from detector.models import Alert, Event, LogSource

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z

RULES = """
title: Role assumed
id: 1b000000-0000-4000-8000-000000000001
name: assume_role
status: experimental
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventName: AssumeRole}
  condition: sel
level: low
---
title: Secret read
id: 1b000000-0000-4000-8000-000000000002
name: secret_read
status: stable
logsource: {product: ecs}
detection:
  sel: {event.action: GetSecretValue}
  condition: sel
level: medium
---
title: Secret sweep
id: 1b000000-0000-4000-8000-000000000003
name: secret_sweep
status: test
correlation:
  type: event_count
  rules: [secret_read]
  group-by: [user.name]
  timespan: 10m
  generate: true
  condition: {gte: 3}
level: high
"""
ROLE, READ, SWEEP = (f"1b000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))


@pytest.fixture
def ruleset(tmp_path: Path) -> RuleSet:
    """The three rules above, loaded without problems."""
    rules = load_rules([write(tmp_path, "rules.yml", RULES)])
    assert not rules.errors, [str(e) for e in rules.errors]
    return rules


def exceptions(tmp_path: Path, text: str) -> list[RuleException]:
    """Exceptions of one YAML file; fails on any problem."""
    loaded = load_exceptions([write(tmp_path, "exceptions.yml", text)])
    assert not loaded.errors, [str(e) for e in loaded.errors]
    return loaded.exceptions


def assume(user: str, t: float = T0, n: int = 0) -> Event:
    """A CloudTrail AssumeRole event by ``user``."""
    raw = {"eventName": "AssumeRole", "userIdentity": {"arn": f"arn:aws:iam::1:user/{user}"}}
    ecs = {"event": {"action": "AssumeRole"}, "user": {"name": user}}
    return event(raw, ecs=ecs, event_id=f"role-{user}-{n}", timestamp=t)


def read(user: str, t: float = T0, n: int = 0) -> Event:
    """A Secrets Manager GetSecretValue event by ``user``."""
    raw = {"eventName": "GetSecretValue"}
    ecs = {"event": {"action": "GetSecretValue"}, "user": {"name": user}}
    return event(raw, ecs=ecs, event_id=f"read-{user}-{n}", timestamp=t)


def alerts(ruleset: RuleSet, events: list[Event]) -> list[Alert]:
    """Every alert of ``events`` through the in-process pipeline, flushed."""
    pipeline = AlertPipeline(ruleset)
    out = [a for e in events for a in pipeline.process(e)]
    return out + pipeline.flush()


def rules_of(found: list[Alert]) -> list[str]:
    """Rule ids of ``found``, in order."""
    return [a.rule.id for a in found]


SWEEP_EVENTS = [read("mallory", T0 + i, i) for i in range(3)]


def test_exception_for_one_rule_silences_only_that_rule_and_principal(
    ruleset: RuleSet, tmp_path: Path
) -> None:
    """A per-rule exception drops that rule's matches on covered events (ECS and native
    field names both resolve) and leaves other principals and rules alone."""
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: ci-deploy
    rules: [assume_role]
    reason: the deploy pipeline assumes roles all day
    author: platform-security
    detection:
      ci: {user.name|startswith: ci-}
      arn: {userIdentity.arn|endswith: /svc-backup}
      condition: ci or arn
""",
    )
    effective = apply_policy(ruleset, exceptions=excs).ruleset
    found = alerts(effective, [assume("ci-deploy"), assume("svc-backup"), assume("alice")])
    assert [a.events[0]["user"]["name"] for a in found] == ["alice"]
    assert dict(effective.exceptions.dropped) == {("ci-deploy", ROLE): 2}
    # The same events raise three alerts without the exception.
    assert len(alerts(ruleset, [assume("ci-deploy"), assume("svc-backup"), assume("alice")])) == 3


def test_global_exception_applies_to_every_rule(ruleset: RuleSet, tmp_path: Path) -> None:
    """An exception without ``rules`` covers the matches of every rule."""
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: red-team
    reason: the announced red-team exercise
    author: soc
    detection:
      team: {user.name: [redteam-1, redteam-2]}
      condition: team
""",
    )
    effective = apply_policy(ruleset, exceptions=excs).ruleset
    found = alerts(effective, [assume("redteam-1"), read("redteam-2"), read("bob")])
    assert rules_of(found) == [READ]
    assert effective.exceptions.dropped == {("red-team", ROLE): 1, ("red-team", READ): 1}


def test_exception_on_a_base_rule_keeps_matches_from_the_correlation(
    ruleset: RuleSet, tmp_path: Path
) -> None:
    """Matches an exception drops never reach a correlation: the covered principal's
    sweep raises nothing, another principal's sweep still correlates."""
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: backup-job
    rules: [1b000000-0000-4000-8000-000000000002]
    reason: the nightly backup job reads every secret
    author: platform
    detection:
      job: {user.name: backup}
      condition: job
""",
    )
    effective = apply_policy(ruleset, exceptions=excs).ruleset
    covered = [read("backup", T0 + i, i) for i in range(5)]
    assert alerts(effective, covered) == []
    assert SWEEP in rules_of(alerts(effective, SWEEP_EVENTS))


def test_exception_naming_a_correlation_filters_its_base_rules(
    ruleset: RuleSet, tmp_path: Path
) -> None:
    """An exception on a correlation applies to the matches of the rules it references."""
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: mallory-is-fine
    rules: [secret_sweep]
    reason: test account
    author: soc
    detection:
      who: {user.name: mallory}
      condition: who
""",
    )
    result = apply_policy(ruleset, exceptions=excs)
    assert alerts(result.ruleset, SWEEP_EVENTS) == []
    assert result.state("secret_sweep").exceptions == ("mallory-is-fine",)
    assert result.state("secret_read").exceptions == ("mallory-is-fine",)
    assert result.state("assume_role").exceptions == ()


def test_expiry_is_in_event_time_and_reported(ruleset: RuleSet, tmp_path: Path) -> None:
    """An exception covers events before ``expires`` and none after, whatever the clock
    says; :meth:`expired` reports it once the date has passed."""
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: migration
    rules: [assume_role]
    reason: account migration
    author: cloud-team
    expires: 2027-01-16
    detection:
      who: {user.name: migrator}
      condition: who
""",
    )
    expiry = 1_800_057_600.0  # 2027-01-16T00:00:00Z
    assert excs[0].expires == expiry
    effective = apply_policy(ruleset, exceptions=excs).ruleset
    found = alerts(effective, [assume("migrator", expiry - 1, 1), assume("migrator", expiry, 2)])
    assert [a.events[0]["event"]["id"] for a in found] == ["role-migrator-2"]
    assert effective.exceptions.expired(expiry - 1) == []
    assert [e.id for e in effective.exceptions.expired(expiry)] == ["migration"]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("reason: r\n    author: a\n    detection: {s: {a: b}, condition: s}", "needs an 'id'"),
        ("id: x\n    author: a\n    detection: {s: {a: b}, condition: s}", "'reason' is required"),
        ("id: x\n    reason: r\n    detection: {s: {a: b}, condition: s}", "'author' is required"),
        ("id: x\n    reason: r\n    author: a\n    detection: {s: {a: b}}", "'condition'"),
        (
            "id: x\n    reason: r\n    author: a\n    detection: {s: {a|nope: b}, condition: s}",
            "invalid detection",
        ),
        (
            "id: x\n    reason: r\n    author: a\n    expires: soon\n"
            "    detection: {s: {a: b}, condition: s}",
            "'expires' is not a date",
        ),
        (
            "id: x\n    reason: r\n    author: a\n    owner: b\n"
            "    detection: {s: {a: b}, condition: s}",
            "unknown key(s) owner",
        ),
    ],
)
def test_bad_exception_entries_are_reported_with_their_file(
    tmp_path: Path, entry: str, problem: str
) -> None:
    """Each malformed entry is one problem naming the file; the good entries still load."""
    good = "  - id: good\n    reason: r\n    author: a\n    detection: {s: {a: b}, condition: s}\n"
    path = write(tmp_path, "bad.yml", f"exceptions:\n  - {entry}\n{good}")
    loaded = load_exceptions([path])
    assert [e.id for e in loaded.exceptions] == ["good"]
    assert len(loaded.errors) == 1
    assert problem in str(loaded.errors[0]) and str(path) in str(loaded.errors[0])


def test_duplicate_ids_and_unreadable_files_are_problems(tmp_path: Path) -> None:
    """Ids are unique across files; a file that is not an exception list is reported."""
    entry = "exceptions:\n  - {id: x, reason: r, author: a, detection: {s: {a: b}, condition: s}}\n"
    write(tmp_path / "dir", "one.yml", entry)
    write(tmp_path / "dir", "two.yml", entry)
    write(tmp_path / "dir", "three.yaml", "- just a list\n")
    loaded = load_exceptions([tmp_path / "dir", tmp_path / "missing.yml"])
    assert [e.id for e in loaded.exceptions] == ["x"]
    messages = " | ".join(str(e) for e in loaded.errors)
    assert "also defined in" in messages
    assert "a list under 'exceptions'" in messages
    assert "no such exception file" in messages


def test_disabled_rule_is_not_evaluated_unless_a_correlation_needs_it(
    ruleset: RuleSet,
) -> None:
    """``rules.disabled`` turns a rule off; a disabled base rule of a running correlation
    keeps feeding it as a silent building block."""
    result = apply_policy(ruleset, RulePolicy(disabled=["assume_role", READ]))
    assert alerts(result.ruleset, [assume("alice")]) == []
    assert rules_of(alerts(result.ruleset, SWEEP_EVENTS)) == [SWEEP]
    assert result.state(ROLE).state == "disabled"
    assert result.state(ROLE).why == "listed in rules.disabled"
    block = result.state("secret_read")
    assert block.state == "building block"
    assert block.reasons == (
        "listed in rules.disabled",
        "kept as a building block of 'Secret sweep'",
    )
    # Turning the correlation off too removes both.
    both = apply_policy(ruleset, RulePolicy(disabled=[READ, SWEEP]))
    assert alerts(both.ruleset, SWEEP_EVENTS) == []
    assert [r.info.id for r in both.ruleset.rules] == [ROLE]


def test_min_level_and_level_overrides(ruleset: RuleSet) -> None:
    """``min_level`` turns off rules below it, judged on the overridden level; an override
    changes the level alerts carry, for detection and correlation rules alike."""
    result = apply_policy(
        ruleset,
        RulePolicy(min_level="medium", level_overrides={"secret_sweep": "critical"}),
    )
    assert result.state(ROLE).state == "disabled"
    assert result.state(ROLE).why == "level low is below rules.min_level medium"
    assert [a.rule.level for a in alerts(result.ruleset, SWEEP_EVENTS)] == [
        "medium",
        "medium",
        "medium",
        "critical",
    ]
    raised = apply_policy(
        ruleset, RulePolicy(min_level="medium", level_overrides={"assume_role": "high"})
    )
    assert [a.rule.level for a in alerts(raised.ruleset, [assume("alice")])] == ["high"]
    assert raised.state(ROLE).state == "enabled"
    assert raised.state(ROLE).why == "level low overridden to high (rules.level_overrides)"
    # The loaded rule set is untouched.
    assert [a.rule.level for a in alerts(ruleset, [assume("alice")])] == ["low"]


def test_statuses_keep_only_listed_statuses(ruleset: RuleSet) -> None:
    """``statuses`` keeps rules whose Sigma status is listed; the others are off."""
    result = apply_policy(ruleset, RulePolicy(statuses=["stable", "test"]))
    assert {s.id: s.state for s in result.states} == {
        ROLE: "disabled",
        READ: "enabled",
        SWEEP: "enabled",
    }
    assert "status experimental is not in rules.statuses" in result.state(ROLE).why
    only_stable = apply_policy(ruleset, RulePolicy(statuses=["stable"]))
    assert only_stable.ruleset.correlations == ()
    assert rules_of(alerts(only_stable.ruleset, SWEEP_EVENTS)) == [READ, READ, READ]


def test_silent_correlation_kept_for_an_outer_one(tmp_path: Path) -> None:
    """A disabled correlation that a running correlation references still feeds it, and
    raises no alert of its own."""
    outer = """---
title: Sweeps by two users
id: 1b000000-0000-4000-8000-000000000004
name: two_sweeps
correlation:
  type: value_count
  rules: [secret_sweep]
  group-by: []
  timespan: 1h
  generate: true
  condition: {gte: 2, field: user.name}
level: critical
"""
    rules = load_rules([write(tmp_path, "rules.yml", RULES + outer)])
    assert not rules.errors, [str(e) for e in rules.errors]
    events = SWEEP_EVENTS + [read("trudy", T0 + 10 + i, i) for i in range(3)]
    before = rules_of(alerts(rules, events))
    assert SWEEP in before and "1b000000-0000-4000-8000-000000000004" in before
    result = apply_policy(rules, RulePolicy(disabled=["secret_sweep"]))
    after = rules_of(alerts(result.ruleset, events))
    assert SWEEP not in after and "1b000000-0000-4000-8000-000000000004" in after
    assert result.state(SWEEP).state == "building block"


def test_unknown_policy_references_are_listed(ruleset: RuleSet) -> None:
    """Ids or names in the policy that match no loaded rule are reported (typos)."""
    policy = RulePolicy(disabled=["assume_role", "nope"], level_overrides={"gone": "low"})
    assert unknown_references(ruleset, policy) == ["gone", "nope"]


def test_exceptions_read_native_fields_of_native_events(ruleset: RuleSet, tmp_path: Path) -> None:
    """A native field resolves on the raw record when the ECS document lacks it."""
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: by-arn
    reason: r
    author: a
    detection:
      arn: {userIdentity.arn|contains: ':user/bob'}
      condition: arn
""",
    )
    effective = apply_policy(ruleset, exceptions=excs).ruleset
    ev = Event(
        id="e",
        timestamp=T0,
        family="cloudtrail",
        logsource=LogSource("aws", "cloudtrail"),
        ecs={},
        raw={"eventName": "AssumeRole", "userIdentity": {"arn": "arn:aws:iam::1:user/bob"}},
    )
    assert alerts(effective, [ev]) == []


def test_exception_applies_to_first_seen_rules(tmp_path: Path) -> None:
    """A first-seen rule never learns or alerts on a term an exception covers: the
    covered address raises nothing, and is still "new" once the exception expires."""
    rule = """
title: New source address for a user
id: 1b000000-0000-4000-8000-000000000005
logsource: {product: ecs}
detection:
  sel: {event.action: GetSecretValue}
  condition: sel
first_seen:
  fields: [source.ip]
  group-by: [user.name]
  timespan: 30d
level: medium
"""
    rules = load_rules([write(tmp_path, "first_seen.yml", rule)])
    assert not rules.errors, [str(e) for e in rules.errors]
    excs = exceptions(
        tmp_path,
        """
exceptions:
  - id: vpn-egress
    reason: the office VPN egress address
    author: netops
    expires: 2027-01-16
    detection:
      vpn: {source.ip: 192.0.2.10}
      condition: vpn
""",
    )
    effective = apply_policy(rules, exceptions=excs).ruleset

    def reads(ip: str, t: float, n: int) -> Event:
        ecs = {"event": {"action": "GetSecretValue"}, "user": {"name": "ann"}, "source": {"ip": ip}}
        return event({}, ecs=ecs, event_id=f"fs-{n}", timestamp=t)

    found = alerts(
        effective,
        [reads("192.0.2.10", T0, 1), reads("198.51.100.9", T0 + 1, 2)],
    )
    assert [a.events[0]["source"]["ip"] for a in found] == ["198.51.100.9"]
    after = alerts(effective, [reads("192.0.2.10", 1_800_057_600.0, 3)])
    assert [a.events[0]["source"]["ip"] for a in after] == ["192.0.2.10"]
