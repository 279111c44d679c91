"""First-seen (new term) rules: the detector's documented Sigma extension."""

from __future__ import annotations

from typing import Any

import pytest
from corr_helpers import T0, match
from sigma.backends.elasticsearch import LuceneBackend
from sigma.collection import SigmaCollection
from sigma.rule import SigmaRule

from detector.detect.correlation import FirstSeenEngine, first_seen_spec, suppressed_rule_ids
from detector.detect.correlation.firstseen import _cached_network, _network
from detector.errors import RuleLoadError

DAY = 86400.0
RULE = """
title: Image pull from a new address
id: 0f000000-0000-4000-8000-000000000001
status: experimental
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
level: medium
first_seen:
  fields: [source.ip]
  group-by: [user.name]
  timespan: 30d
"""


def _engine(yaml: str = RULE, **kwargs: Any) -> tuple[FirstSeenEngine, SigmaRule]:
    rule = SigmaCollection.from_yaml(yaml).rules[0]
    assert isinstance(rule, SigmaRule)
    return FirstSeenEngine([rule], **kwargs), rule


def _pull(rule: SigmaRule, t: float, user: str, ip: str) -> Any:
    return match(rule, t, {"user.name": user, "source.ip": ip})


def test_new_address_alerts_once_and_repeats_stay_quiet() -> None:
    """The first pull from an address alerts; the same address again does not; another
    user with that address is new for that user."""
    eng, rule = _engine()
    first = eng.process(_pull(rule, 0, "alice", "198.51.100.7"))
    assert len(first) == 1
    alert = first[0]
    assert alert.rule.type == "first_seen"
    assert alert.group == {"user.name": "alice", "source.ip": "198.51.100.7"}
    assert "first seen source.ip=198.51.100.7 for user.name=alice" in alert.reason
    assert alert.event_count == 1
    assert eng.process(_pull(rule, 60, "alice", "198.51.100.7")) == []
    assert len(eng.process(_pull(rule, 61, "bob", "198.51.100.7"))) == 1


def test_term_is_new_again_only_after_more_than_the_timespan() -> None:
    """Seen exactly 30d ago still counts as known; 30d and a second ago it is new."""
    eng, rule = _engine(allowed_lateness=0)
    eng.process(_pull(rule, 0, "alice", "198.51.100.7"))
    assert eng.process(_pull(rule, 30 * DAY, "alice", "198.51.100.7")) == []
    assert eng.process(_pull(rule, 60 * DAY, "alice", "198.51.100.7")) == []
    assert len(eng.process(_pull(rule, 90 * DAY + 1, "alice", "198.51.100.7"))) == 1


def test_learning_period_records_terms_without_alerting() -> None:
    """During `learn` terms are remembered silently; afterwards only unknown ones alert."""
    eng, rule = _engine(RULE + "  learn: 1d\n")
    assert eng.process(_pull(rule, 0, "alice", "10.0.0.1")) == []
    assert eng.process(_pull(rule, DAY - 1, "alice", "10.0.0.2")) == []
    assert eng.process(_pull(rule, DAY, "alice", "10.0.0.1")) == []
    assert len(eng.process(_pull(rule, DAY + 1, "alice", "10.0.0.3"))) == 1


def test_network_option_compares_ipv4_slash24_and_ipv6_slash48() -> None:
    """With `network: 24` a new host in a known /24 is quiet, a new /24 alerts; IPv6 uses
    /48; values that are not addresses are compared as they are."""
    eng, rule = _engine(RULE + "  network: 24\n")
    assert len(eng.process(_pull(rule, 0, "u", "203.0.113.5"))) == 1
    assert eng.process(_pull(rule, 1, "u", "203.0.113.77")) == []
    alerts = eng.process(_pull(rule, 2, "u", "203.0.114.1"))
    assert [a.group["source.ip"] for a in alerts] == ["203.0.114.0/24"]
    assert len(eng.process(_pull(rule, 3, "u", "2001:db8:1:2::1"))) == 1
    assert eng.process(_pull(rule, 4, "u", "2001:db8:1:ffff::9")) == []
    assert len(eng.process(_pull(rule, 5, "u", "runner-7.internal"))) == 1


def test_missing_fields_and_unrelated_rules_are_ignored() -> None:
    """A candidate without the term field is counted, not remembered."""
    eng, rule = _engine()
    assert eng.process(match(rule, 0, {"user.name": "u"})) == []
    stats = eng.stats.rules["0f000000-0000-4000-8000-000000000001"]
    assert stats.missing_fields == 1 and stats.active_groups == 0


def test_state_is_bounded_expires_and_counts_evictions() -> None:
    """Keys beyond the cap evict the least recently seen; keys leave after the timespan."""
    eng, rule = _engine(max_keys_per_rule=2, allowed_lateness=0)
    for i, ip in enumerate(["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3"]):
        eng.process(_pull(rule, i, "u", ip))
    stats = eng.stats.rules["0f000000-0000-4000-8000-000000000001"]
    assert stats.evictions == 1 and stats.active_groups == 2
    assert len(eng.process(_pull(rule, 5, "u", "10.0.0.2"))) == 1  # forgotten: new again
    eng.advance_watermark(T0 + 31 * DAY)
    assert eng.stats.rules["0f000000-0000-4000-8000-000000000001"].active_groups == 0


def test_too_late_candidates_are_learned_without_alerting() -> None:
    """A candidate older than watermark - timespan raises no alert and is counted, but its
    term is learned: the same term 30 days later is known, as in an in-order replay."""
    eng, rule = _engine(allowed_lateness=60)
    eng.process(_pull(rule, 40 * DAY, "u", "10.0.0.1"))
    assert eng.process(_pull(rule, 9 * DAY, "u", "10.0.0.9")) == []
    assert eng.stats.too_late_events == 1
    assert eng.process(_pull(rule, 39 * DAY, "u", "10.0.0.9")) == []
    assert eng.stats.late_events == 1
    assert len(eng.process(_pull(rule, 39 * DAY, "u", "10.0.0.7"))) == 1


def test_learn_remembers_a_term_without_alerting() -> None:
    """``learn`` (the correlate stage's too-late policy) counts the match as too late and
    makes its term known, so the next event with it is not first seen."""
    eng, rule = _engine(allowed_lateness=0)
    eng.learn(_pull(rule, DAY, "u", "10.0.0.9"))
    assert eng.stats.too_late_events == 1
    assert eng.process(_pull(rule, 2 * DAY, "u", "10.0.0.9")) == []
    assert len(eng.process(_pull(rule, 2 * DAY, "u", "10.0.0.8"))) == 1


def test_snapshot_restore_round_trips() -> None:
    """A restored engine remembers terms, learning state and counters."""
    eng, rule = _engine(RULE + "  learn: 1h\n")
    eng.process(_pull(rule, 0, "u", "10.0.0.1"))
    other, rule2 = _engine(RULE + "  learn: 1h\n")
    other.restore(eng.snapshot())
    assert other.stats == eng.stats
    assert other.process(_pull(rule2, 1800, "u", "10.0.0.2")) == []  # still learning
    assert other.process(_pull(rule2, 7200, "u", "10.0.0.1")) == []  # known
    assert len(other.process(_pull(rule2, 7201, "u", "10.0.0.3"))) == 1
    with pytest.raises(ValueError, match="invalid first-seen snapshot"):
        other.restore(b'{"version": 1, "kind": "first_seen", "parts": [{}]}')


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("first_seen: {fields: [source.ip]}", "'fields' and 'timespan' are required"),
        ("first_seen: {fields: [source.ip], timespan: 30x}", "Timespan '30x' is invalid"),
        ("first_seen: {fields: [1], timespan: 1d}", "'fields' must be a field name"),
        ("first_seen: {fields: a, timespan: 1d, network: 40}", "'network' must be a prefix"),
        ("first_seen: {fields: a, timespan: 1d, window: 2}", "unknown option(s) window"),
    ],
)
def test_malformed_first_seen_is_rejected_at_load(extra: str, message: str) -> None:
    """A malformed extension is a load error, never a rule silently run as plain."""
    yaml = RULE.split("first_seen:", maxsplit=1)[0] + extra + "\n"
    rule = SigmaCollection.from_yaml(yaml).rules[0]
    with pytest.raises(RuleLoadError) as info:
        FirstSeenEngine([rule])
    assert message in str(info.value)


def test_extension_stays_valid_sigma_for_other_tools() -> None:
    """pySigma loads the rule and its Elasticsearch backend converts it as a plain rule;
    the single-event engine is told not to alert on it directly."""
    coll = SigmaCollection.from_yaml(RULE)
    assert not coll.errors
    assert LuceneBackend().convert(coll) == ["registry.operation:pull"]
    rule = coll.rules[0]
    spec = first_seen_spec(rule)
    assert spec is not None and spec.timespan == 30 * DAY and spec.ecs_first
    assert suppressed_rule_ids(coll.rules) == {"0f000000-0000-4000-8000-000000000001"}


def test_network_cache_keeps_short_values_only() -> None:
    """The address-prefix cache holds short texts only: unique huge hostile values are
    answered (kept as they are, not addresses) without entering it, so it stays bounded
    in bytes."""
    before = _cached_network.cache_info().currsize
    huge = [f"{n:08d}" + "a" * 4096 for n in range(50)]
    assert [_network(v, 24, 64) for v in huge] == huge
    assert _cached_network.cache_info().currsize == before
    assert _network("10.1.2.3", 24, 64) == "10.1.2.0/24"
    assert _cached_network.cache_info().currsize == before + 1
