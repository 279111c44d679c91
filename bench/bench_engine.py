"""Benchmark: single-event Sigma matching on pre-parsed CloudTrail events, one core.

Rules: the 57 SigmaHQ CloudTrail rules (vendored in detections/sigmahq), the project's rules
(detections/rules: the CloudTrail and ECS ones apply to CloudTrail events) and generated
project-style rules, so that more than 100 rules apply to every CloudTrail event.

Events: ``Event`` objects built directly (raw CloudTrail record + a small ECS document):
a mix of common read/list/describe API calls that no rule targets, plus a few percent of
calls built from the rules' required values (some of those match, some do not).

Timed in the same run over the same events:

- the engine (``DetectionEngine.evaluate``: log-source buckets, literal-value index,
  compiled closures);
- a naive baseline: every applicable rule evaluated in turn, as composed closures over
  a flattened dict of the event (flattening done beforehand, not timed), no index.

Each is timed over several passes (``--repeat``); the best pass is reported (least
disturbed by other processes). Both must report the same number of matches. Run from
the repository root: ``.venv/bin/python bench/bench_engine.py [--events N]
[--baseline-events N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule
from sigma.types import (
    SigmaBool,
    SigmaCIDRExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SpecialChars,
)

from detector.app.rulepack import rule_loader
from detector.app.settings import load_settings
from detector.detect import DetectionEngine, RuleSet
from detector.detect.placeholders import conversion_pipeline
from detector.models import Event, LogSource

CORPUS = Path("detections/sigmahq/aws/cloudtrail")
PROJECT = Path("detections/rules")
#: The example organization values the project rules' placeholders take.
SETTINGS = Path("examples/detector.yaml")
CLOUDTRAIL = LogSource("aws", "cloudtrail")

_BENIGN_CALLS = {
    "ec2.amazonaws.com": [
        "DescribeInstances", "DescribeVolumes", "DescribeSnapshots", "DescribeSecurityGroups",
        "DescribeSubnets", "DescribeVpcs", "DescribeImages", "DescribeTags", "DescribeAddresses",
        "DescribeNetworkInterfaces", "DescribeInstanceStatus", "DescribeRegions",
    ],
    "s3.amazonaws.com": [
        "GetObject", "HeadObject", "ListObjects", "ListBuckets", "GetBucketLocation",
        "GetBucketAcl",
    ],
    "iam.amazonaws.com": [
        "GetUser", "ListRoles", "ListUsers", "GetRole", "ListPolicies", "GetPolicyVersion",
    ],
    "sts.amazonaws.com": ["GetCallerIdentity"],
    "kms.amazonaws.com": ["Decrypt", "GenerateDataKey"],
    "logs.amazonaws.com": ["DescribeLogGroups"],
    "ecr.amazonaws.com": ["GetAuthorizationToken", "DescribeRepositories"],
    "lambda.amazonaws.com": ["ListFunctions20150331"],
    "cloudwatch.amazonaws.com": ["GetMetricData"],
    "dynamodb.amazonaws.com": ["DescribeTable"],
    "ssm.amazonaws.com": ["GetParameter"],
}  # fmt: skip
#: Common API calls no rule targets: (eventSource, eventName).
BENIGN = [(source, name) for source, names in _BENIGN_CALLS.items() for name in names]

#: Sensitive-sounding calls the generated project-style rules target.
GENERATED_NAMES = [
    "DeleteFlowLogs", "DisableKey", "ScheduleKeyDeletion", "DeleteDetector",
    "DisableSecurityHub", "DeleteConfigRule", "StopConfigurationRecorder", "DeleteAlarms",
    "PutRetentionPolicy", "DeleteLogGroup", "ModifySnapshotAttribute", "ModifyImageAttribute",
    "CreateLoginProfile", "AttachUserPolicy", "AttachRolePolicy", "PutRolePolicy", "CreateUser",
    "AddUserToGroup", "UpdateAssumeRolePolicy", "CreateVirtualMFADevice",
    "DeactivateMFADevice", "AuthorizeSecurityGroupIngress", "CreateKeyPair", "ImportKeyPair",
    "RunInstances", "PutBucketAcl", "PutBucketPolicy", "DeleteBucketPolicy", "PutBucketLogging",
    "DeleteBucketEncryption", "CreateFunction20150331", "AddPermission20150331",
    "SetRepositoryPolicy", "DeleteRepository", "PutImageScanningConfiguration", "CreateSecret",
    "GetSecretValue", "DeleteSecret", "PutParameter", "SendCommand",
]  # fmt: skip


def generated_rules(directory: Path, count: int) -> None:
    """Write ``count`` project-style rules (native and ECS) into ``directory``."""
    rng = random.Random(7)
    shapes = [
        "    selection:\n        eventName: {name}\n    condition: selection",
        "    selection:\n        eventName: {name}\n        userIdentity.type: Root\n"
        "    condition: selection",
        "    selection:\n        eventName:\n            - {name}\n            - {other}\n"
        "        errorCode|exists: false\n    condition: selection",
        "    selection:\n        eventName: {name}\n    filter:\n"
        "        sourceIPAddress|cidr:\n            - 10.0.0.0/8\n            - 192.168.0.0/16\n"
        "    condition: selection and not filter",
        "    selection:\n        eventSource: iam.amazonaws.com\n"
        "        eventName|startswith: {name}\n"
        "        userAgent|contains: 'aws-cli'\n    condition: selection",
    ]
    ecs_shape = (
        "    selection:\n        event.action: {name}\n"
        "        user.name|startswith: 'ci-'\n    condition: selection"
    )
    for i in range(count):
        name, other = rng.sample(GENERATED_NAMES, 2)
        ecs = i % 5 == 4
        body = (ecs_shape if ecs else rng.choice(shapes)).format(name=name, other=other)
        logsource = "    product: ecs" if ecs else "    product: aws\n    service: cloudtrail"
        (directory / f"gen_{i:03d}.yml").write_text(
            f"title: Generated rule {i}\nid: {uuid.UUID(int=rng.getrandbits(128))}\n"
            f"status: test\nlogsource:\n{logsource}\ndetection:\n{body}\nlevel: medium\n"
        )


def make_event(rng: random.Random, source: str, name: str, i: int) -> Event:
    """One CloudTrail-shaped event with its ECS document."""
    # Humans from the office or VPN, CI identities from CI networks, root almost never.
    user = rng.choice(["alice", "bob", "carol", "dave", "ci-deploy", "ci-build"])
    ip = rng.choice(
        ["10.20.1.9", "10.20.7.7"] if user.startswith("ci-") else ["198.51.100.23", "10.8.0.12"]
    )
    agent = rng.choice(["aws-cli/2.15 Python/3.11", "Boto3/1.34", "console.amazonaws.com"])
    identity_type = "Root" if rng.random() < 0.002 else rng.choice(["IAMUser", "AssumedRole"])
    raw: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": identity_type,
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::111122223333:user/{user}",
            "accountId": "111122223333",
            "accessKeyId": "AKIAEXAMPLE",
            "userName": user,
            "sessionContext": {"sessionIssuer": {}, "attributes": {"mfaAuthenticated": "false"}},
        },
        "eventTime": "2024-05-06T03:15:00Z",
        "eventSource": source,
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": {"bucketName": "b", "maxResults": 100},
        "responseElements": None,
        "requestID": f"req-{i}",
        "eventID": f"ev-{i}",
        "readOnly": name.startswith(("Describe", "Get", "List", "Head")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": "111122223333",
    }
    if rng.random() < 0.05:
        raw["errorCode"] = "AccessDenied"
    ecs = {
        "@timestamp": raw["eventTime"],
        "event": {"action": name, "provider": source, "dataset": "aws.cloudtrail", "id": f"ev-{i}"},
        "user": {"name": user},
        "source": {"ip": ip, "address": ip},
        "user_agent": {"original": agent},
        "cloud": {"provider": "aws", "region": "eu-west-1", "account": {"id": "111122223333"}},
    }
    return Event(f"ev-{i}", 1_714_965_300.0 + i, "cloudtrail", CLOUDTRAIL, ecs, raw)


def make_events(rules: RuleSet, count: int, targeted: float) -> list[Event]:
    """``count`` events; a ``targeted`` fraction built from rule requirements."""
    rng = random.Random(42)
    required = [r.requirements for r in rules.rules if r.requirements and not r.scope.ecs]
    targeted_names = {v for req in required for v in req.get("eventName", ())}
    benign = [(s, n) for s, n in BENIGN if n.lower() not in targeted_names]
    events: list[Event] = []
    for i in range(count):
        if rng.random() < targeted:
            req = rng.choice(required)
            source = min(req.get("eventSource", {"iam.amazonaws.com"}))
            name = min(req.get("eventName", {"CreateUser"}))
            ev = make_event(rng, source, name, i)
            for fld, values in req.items():
                if fld not in ("eventName", "eventSource") and "." not in fld:
                    ev.raw[fld] = min(values)  # type: ignore[index]
            events.append(ev)
        else:
            source, name = rng.choice(benign)
            events.append(make_event(rng, source, name, i))
    return events


# --- naive baseline ----------------------------------------------------------------------

Flat = dict[str, Any]
Check = Callable[[Flat], bool]


def flatten(doc: Mapping[str, Any], prefix: str = "", out: Flat | None = None) -> Flat:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1, "a": [1]}``: every path, objects as their leaves."""
    out = {} if out is None else out
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flatten(value, path + ".", out)
            out[path] = _leaves(value)
        else:
            out[path] = value
    return out


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, Mapping):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _texts(value: Any) -> list[str]:
    out = []
    for leaf in _leaves(value) if isinstance(value, list | Mapping) else [value]:
        if isinstance(leaf, bool):
            out.append("true" if leaf else "false")
        elif isinstance(leaf, str | int | float):
            out.append(str(leaf))
    return out


def naive(node: Any) -> Check:
    """A straightforward closure per condition node, regexes for every string pattern."""
    if isinstance(node, ConditionAND):
        parts = [naive(a) for a in node.args]
        return lambda d: all(p(d) for p in parts)
    if isinstance(node, ConditionOR):
        parts = [naive(a) for a in node.args]
        return lambda d: any(p(d) for p in parts)
    if isinstance(node, ConditionNOT):
        inner = naive(node.args[0])
        return lambda d: not inner(d)
    if isinstance(node, ConditionValueExpression):
        raise SystemExit("keyword rules are not used in this benchmark")
    assert isinstance(node, ConditionFieldEqualsValueExpression)
    field, value = node.field, node.value
    if isinstance(value, SigmaExpansion):
        parts = [naive(ConditionFieldEqualsValueExpression(field, v)) for v in value.values]
        return lambda d: any(p(d) for p in parts)
    if isinstance(value, SigmaExists):
        return lambda d: (field in d) is bool(value)
    if isinstance(value, SigmaNull):
        return lambda d: d.get(field) in (None, [])
    if isinstance(value, SigmaFieldReference):
        ref = value.field
        return lambda d: (
            field in d
            and ref in d
            and any(a.lower() == b.lower() for a in _texts(d[field]) for b in _texts(d[ref]))
        )
    if isinstance(value, SigmaCIDRExpression):
        net = value.network

        def in_net(s: str) -> bool:
            try:
                return ipaddress.ip_address(s) in net
            except ValueError:
                return False

        return lambda d: any(in_net(s) for s in _texts(d.get(field)))
    if isinstance(value, SigmaRegularExpression):
        rx = re.compile(str(value.regexp))
        return lambda d: any(rx.search(s) for s in _texts(d.get(field)))
    if isinstance(value, SigmaBool):
        spelled = "true" if value.boolean else "false"
        return lambda d: any(s.lower() == spelled for s in _texts(d.get(field)))
    if isinstance(value, SigmaNumber):
        return lambda d: any(s == str(value.number) for s in _texts(d.get(field)))
    assert isinstance(value, SigmaString), type(value)
    pattern = "".join(
        re.escape(p) if isinstance(p, str) else ".*" if p is SpecialChars.WILDCARD_MULTI else "."
        for p in value.s
    )
    rx = re.compile(pattern, re.IGNORECASE | re.DOTALL)
    return lambda d: any(rx.fullmatch(s) for s in _texts(d.get(field)))


def naive_rule(rule: SigmaRule, placeholders: ProcessingPipeline) -> Check:
    """The naive closure of a whole rule (conditions OR-ed), its placeholders filled by
    pySigma's own ``value_placeholders`` transformation (a copy: the engine keeps its rule)."""
    rule = copy.deepcopy(rule)
    placeholders.apply(rule)
    parts = [naive(c.parse()) for c in rule.detection.parsed_condition]
    return lambda d: any(p(d) for p in parts)


# --- run --------------------------------------------------------------------------------


def main() -> None:
    """Build rules and events, time both evaluators, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    parser.add_argument("--generated", type=int, default=40)
    parser.add_argument("--targeted", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        generated_rules(Path(tmp), args.generated)
        rules = rule_loader(load_settings(SETTINGS).rules)([CORPUS, PROJECT, Path(tmp)])
    if rules.errors:
        raise SystemExit("\n".join(str(e) for e in rules.errors))
    applicable = [r for r in rules.rules if r.scope.applies(CLOUDTRAIL, "cloudtrail")]
    events = make_events(rules, args.events, args.targeted)
    engine = DetectionEngine(rules)
    engine.evaluate(events[0])  # build the bucket for this log source outside the timing

    # Best of several passes over the same events: the figure least disturbed by other
    # processes on the machine (the median is printed too).
    engine_matches = matched_events = 0
    for ev in events:
        found = engine.evaluate(ev)
        engine_matches += len(found)
        matched_events += bool(found)
    engine_rates = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for ev in events:
            engine.evaluate(ev)
        engine_rates.append(len(events) / (time.perf_counter() - start))
    engine_rate = max(engine_rates)

    placeholders = ProcessingPipeline.from_dict(conversion_pipeline(rules.placeholders))
    baseline = [(naive_rule(r.sigma, placeholders), r.scope.ecs) for r in applicable]
    sample = events[: args.baseline_events]
    flats = [(flatten(ev.raw), flatten(ev.ecs)) for ev in sample]
    baseline_matches = sum(
        check(ecs_flat if ecs else raw_flat)
        for raw_flat, ecs_flat in flats
        for check, ecs in baseline
    )
    baseline_rates = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        for raw_flat, ecs_flat in flats:
            for check, ecs in baseline:
                check(ecs_flat if ecs else raw_flat)
        baseline_rates.append(len(flats) / (time.perf_counter() - start))
    baseline_rate = max(baseline_rates)
    engine_sample = sum(len(engine.evaluate(ev)) for ev in sample)

    print(
        f"rules applicable to CloudTrail events: {len(applicable)} "
        f"({sum(r.scope.ecs for r in applicable)} ECS, "
        f"{sum(r.path is not None and 'sigmahq' in r.path for r in applicable)} SigmaHQ)"
    )
    print(
        f"events: {len(events)}, matching events: {matched_events / len(events):.1%}, "
        f"matches: {engine_matches}"
    )
    print(
        f"engine:   {engine_rate:,.0f} events/s (one core; best of {args.repeat}, "
        f"median {statistics.median(engine_rates):,.0f})"
    )
    print(
        f"baseline: {baseline_rate:,.0f} events/s (naive closures, no index, "
        f"pre-flattened, {len(sample)} events)"
    )
    print(f"ratio:    {engine_rate / baseline_rate:.1f}x")
    print(
        f"agreement on the baseline sample: engine {engine_sample} matches, "
        f"baseline {baseline_matches} matches"
    )
    if engine_sample != baseline_matches:
        raise SystemExit("engine and baseline disagree")


if __name__ == "__main__":
    main()
