"""The vendored SigmaHQ rules (detections/sigmahq) load, compiles and fires unmodified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import GITHUB, event

from detector.detect import DetectionEngine, RuleSet, alert_for_match, load_rules


@pytest.fixture(scope="module")
def corpus(sigmahq_dir: Path) -> RuleSet:
    """Every rule of the vendored SigmaHQ compatibility corpus."""
    return load_rules([sigmahq_dir])


def test_all_72_rules_load_and_compile(corpus: RuleSet) -> None:
    """All 72 rules compile: no errors, 57 CloudTrail and 15 GitHub audit rules."""
    assert [str(e) for e in corpus.errors] == []
    assert len(corpus.rules) == 72
    scopes = sorted({r.scope.describe() for r in corpus.rules})
    assert scopes == ["aws/cloudtrail", "github/audit"]
    assert sum(r.scope.describe() == "aws/cloudtrail" for r in corpus.rules) == 57


def test_corpus_rules_are_indexed(corpus: RuleSet) -> None:
    """All but two corpus rules require a literal field value (index candidates only).

    The two exceptions match with ``re``/``contains`` only, so they are tested on
    every event of their log source.
    """
    assert sorted(r.info.title for r in corpus.rules if not r.requirements) == [
        "Github Push Protection Bypass Detected",
        "Malicious Usage Of IMDS Credentials Outside Of AWS Infrastructure",
    ]


def _ids(engine: DetectionEngine, raw: dict[str, object], **kw: object) -> set[str]:
    return {m.rule.id for m in engine.evaluate(event(raw, **kw))}  # type: ignore[arg-type]


def test_nested_request_parameters(corpus: RuleSet) -> None:
    """``requestParameters|contains`` searches the nested request object."""
    engine = DetectionEngine(corpus)
    rid = "a136ac98-b2bc-4189-a14d-f0d0388e57a7"
    raw = {
        "eventSource": "s3.amazonaws.com",
        "eventName": "PutBucketVersioning",
        "requestParameters": {
            "bucketName": "b",
            "VersioningConfiguration": {"Status": "Suspended"},
        },
    }
    assert rid in _ids(engine, raw)
    raw["requestParameters"] = {"VersioningConfiguration": {"Status": "Enabled"}}
    assert rid not in _ids(engine, raw)


def test_policy_document_inside_request_parameters(corpus: RuleSet) -> None:
    """``contains|all`` finds quoted JSON fragments inside a JSON-text policy document."""
    engine = DetectionEngine(corpus)
    rid = "db014773-7375-4f4e-b83b-133337c0ffee"
    policy = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject"],
                    "Resource": "arn:aws:s3:::<YOUR-BUCKET-NAME>/*",
                }
            ]
        }
    )
    raw = {
        "eventSource": "iam.amazonaws.com",
        "eventName": "PutUserPolicy",
        "userAgent": "S3 Browser 9.5",
        "requestParameters": {"userName": "u", "policyDocument": policy},
    }
    assert rid in _ids(engine, raw)
    raw["requestParameters"] = {"policyDocument": policy.replace("Allow", "Deny")}
    assert rid not in _ids(engine, raw)


def test_fieldref_filter(corpus: RuleSet) -> None:
    """The login-profile rule is filtered out when the caller changes their own profile."""
    engine = DetectionEngine(corpus)
    rid = "055fb148-60f8-462d-ad16-26926ce050f1"
    raw: dict[str, object] = {
        "eventSource": "iam.amazonaws.com",
        "eventName": "UpdateLoginProfile",
        "userIdentity": {"arn": "alice"},
        "requestParameters": {"userName": "bob"},
    }
    assert rid in _ids(engine, raw)
    raw["requestParameters"] = {"userName": "alice"}
    assert rid not in _ids(engine, raw)


def test_alerts_keep_the_rule_author(corpus: RuleSet) -> None:
    """An alert of a SigmaHQ rule names the rule's author (``rule.author``), as the Detection
    Rule License asks of messages based on matches."""
    engine = DetectionEngine(corpus)
    record = event({"action": "repo.destroy"}, logsource=GITHUB, family="ci")
    (match,) = [
        m for m in engine.evaluate(record) if m.rule.title == "Github Delete Action Invoked"
    ]
    document = alert_for_match(match).to_document()
    assert document["rule"]["author"] == ["Muhammad Faisal (@faisalusuf)"]


def test_github_rule(corpus: RuleSet) -> None:
    """A GitHub audit rule fires on a GitHub event and not on CloudTrail."""
    engine = DetectionEngine(corpus)
    titles = {
        m.rule.title
        for m in engine.evaluate(event({"action": "repo.destroy"}, logsource=GITHUB, family="ci"))
    }
    assert "Github Delete Action Invoked" in titles
    assert not engine.evaluate(event({"action": "repo.destroy"}))


def test_real_cloudtrail_sample(corpus: RuleSet, samples_dir: Path) -> None:
    """On the OTRF CloudTrail sample only the AssumeRole-misuse rule fires (11 records)."""
    engine = DetectionEngine(corpus)
    sample = samples_dir / "otrf-cloudtrail"
    titles: list[str] = []
    for path in sorted(sample.glob("*.json")):
        for line in path.read_text().splitlines():
            titles += [m.rule.title for m in engine.evaluate(event(json.loads(line)))]
    assert titles == ["AWS STS AssumeRole Misuse"] * 11
