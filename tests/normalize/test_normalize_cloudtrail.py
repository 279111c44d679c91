"""CloudTrail records normalize to ECS: who, from where, what, which resource, outcome."""

from __future__ import annotations

from typing import Any

import pytest
from ecs_helpers import RECORDS, SAMPLES, check, fixture, normalize_fixture

from detector.decode import decode_json
from detector.errors import NormalizeError
from detector.models import LogSource
from detector.normalize import Normalizer, normalize_cloudtrail

ACCT = "111122223333"
D_IMG = "sha256:9b2a28eb47540823042a2ba401386845089bb7b62a9637d55816132c4c3c36eb"
D_LAYER = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
GHA_SUB = "repo:acme-corp/payments-api:ref:refs/heads/main"

EXPECTED: dict[str, dict[str, Any]] = {
    "ecr_batchgetimage_pull": {
        "user.name": "i-0abc1234def567890",
        "source.ip": "10.20.30.40",
        "event.action": "BatchGetImage",
        "event.provider": "ecr.amazonaws.com",
        "container.image.name": "payments/api",
        "container.image.tag": ["v1.4.2"],
        "registry.operation": "pull",
        "registry.name": ACCT,
        "event.outcome": "success",
        "aws.cloudtrail.user_identity.session_context.session_issuer.user_name": "eks-node-role",
        "aws.cloudtrail.resources.arn": [f"arn:aws:ecr:eu-west-1:{ACCT}:repository/payments/api"],
    },
    "ecr_getdownloadurlforlayer_pull": {
        "registry.operation": "pull",
        "container.image.hash.all": [
            "sha256:4f4fb700ef54461cfa02571ae0db9a0dc1e0cdb5577484a6d75e68dc38e8acc1"
        ],
        "user_agent.original": "containerd/v1.7.11",
    },
    "ecr_putimage_push": {
        "user.name": "GitHubActions",
        "source.ip": "20.55.14.8",
        "event.action": "PutImage",
        "registry.operation": "push",
        "container.image.name": "payments/api",
        "container.image.tag": ["v1.5.0"],
        "container.image.hash.all": [D_IMG],
        "event.category": ["configuration"],
        "event.type": ["creation"],
    },
    "ecr_completelayerupload_push": {
        "registry.operation": "push",
        "container.image.hash.all": [D_LAYER],
    },
    "ecr_batchdeleteimage_delete": {
        "user.name": "mallory",
        "source.ip": "198.51.100.77",
        "registry.operation": "delete",
        "container.image.hash.all": [D_IMG],
        "container.image.tag": ["v1.5.0"],
        "event.type": ["deletion"],
    },
    "ecr_deleterepository": {
        "registry.operation": "delete",
        "container.image.name": "payments/api",
        "aws.cloudtrail.user_identity.type": "IAMUser",
    },
    "ecr_getauthorizationtoken": {
        "event.action": "GetAuthorizationToken",
        "registry.operation": None,
        "container": None,
        "user.name": "GitHubActions",
    },
    "secretsmanager_getsecretvalue": {
        "user.name": "payments-api-7d9c",
        "user.id": "AROAQXAMPLEROLEID001:payments-api-7d9c",
        "source.ip": "10.20.31.5",
        "event.action": "GetSecretValue",
        "event.provider": "secretsmanager.amazonaws.com",
        "event.outcome": "success",
        "aws.cloudtrail.target": [
            f"arn:aws:secretsmanager:eu-west-1:{ACCT}:secret:prod/payments/db-AbCdEf"
        ],
        "cloud.account.id": ACCT,
        "cloud.region": "eu-west-1",
    },
    "secretsmanager_getsecretvalue_denied": {
        "user.name": "ci-deployer",
        "event.outcome": "failure",
        "error.code": "AccessDenied",
        "aws.cloudtrail.target": ["prod/payments/db"],
        "aws.cloudtrail.user_identity.access_key_id": "AKIAQXAMPLEDEPLOY001",
    },
    "sts_assumerole": {
        "user.name": "alice",
        "event.action": "AssumeRole",
        "event.category": ["authentication"],
        "aws.cloudtrail.target": [f"arn:aws:iam::{ACCT}:role/OrganizationAccountAccessRole"],
        "source.ip": "203.0.113.10",
    },
    "sts_assumerolewithwebidentity_github": {
        "user.name": GHA_SUB,
        "source.ip": "20.55.14.8",
        "event.action": "AssumeRoleWithWebIdentity",
        "event.outcome": "success",
        "aws.cloudtrail.user_identity.type": "WebIdentityUser",
        "aws.cloudtrail.web_identity.subject": GHA_SUB,
        "aws.cloudtrail.web_identity.audience": "sts.amazonaws.com",
        "aws.cloudtrail.web_identity.provider": (
            f"arn:aws:iam::{ACCT}:oidc-provider/token.actions.githubusercontent.com"
        ),
        "aws.cloudtrail.target": [f"arn:aws:iam::{ACCT}:role/gha-ecr-push"],
    },
    "sts_getcalleridentity": {
        "user.name": "bob",
        "source.ip": "185.220.101.34",
        "event.action": "GetCallerIdentity",
        "user_agent.original": (
            "Boto3/1.34.84 md/Botocore#1.34.84 ua/2.0 os/linux#6.1.0 md/arch#x86_64 "
            "lang/python#3.11.2"
        ),
    },
    "iam_createaccesskey": {
        "user.name": "bob",
        "user.target.name": "svc-backup",
        "event.action": "CreateAccessKey",
        "event.category": ["iam"],
        "event.type": ["creation"],
        "related.user": ["bob", "svc-backup"],
        "cloud.region": "us-east-1",
        "aws.cloudtrail.user_identity.access_key_id": "AKIAQXAMPLEBOBKEY001",
    },
    "iam_attachuserpolicy_admin": {
        "user.target.name": "bob",
        "related.user": ["bob"],
        "aws.cloudtrail.target": ["bob", "arn:aws:iam::aws:policy/AdministratorAccess"],
    },
    "iam_createuser": {
        "user.name": "alice-admin",
        "user.target.name": "svc-backup",
        "event.type": ["creation", "user"],
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated": True,
    },
    "signin_consolelogin_mfa": {
        "user.name": "alice",
        "event.action": "ConsoleLogin",
        "event.category": ["authentication"],
        "event.outcome": "success",
        "aws.cloudtrail.console_login.mfa_used": True,
        "aws.cloudtrail.event_type": "AwsConsoleSignIn",
    },
    "signin_consolelogin_no_mfa": {
        "user.name": "alice",
        "source.ip": "45.146.164.110",
        "aws.cloudtrail.console_login.mfa_used": False,
        "event.outcome": "success",
    },
    "signin_consolelogin_failure": {
        "event.outcome": "failure",
        "error.message": "Failed authentication",
        "source.ip": "45.146.164.110",
    },
    "signin_consolelogin_root": {
        "user.name": "root",
        "aws.cloudtrail.user_identity.type": "Root",
        "aws.cloudtrail.console_login.mfa_used": False,
        "source.ip": "198.51.100.200",
    },
    "root_s3_listbuckets": {
        "user.name": "root",
        "aws.cloudtrail.user_identity.type": "Root",
        "aws.cloudtrail.user_identity.access_key_id": "ASIAQXAMPLEROOTKEY01",
        "event.action": "ListBuckets",
        "event.type": ["access"],
    },
    "cloudtrail_stoplogging": {
        "user.name": "bob",
        "event.action": "StopLogging",
        "event.provider": "cloudtrail.amazonaws.com",
        "event.type": ["change"],
        "aws.cloudtrail.target": [f"arn:aws:cloudtrail:eu-west-1:{ACCT}:trail/org-trail"],
    },
    "kms_decrypt_awsservice": {
        "user.name": "secretsmanager.amazonaws.com",
        "source.address": "secretsmanager.amazonaws.com",
        "source.ip": None,
        "related.hosts": ["secretsmanager.amazonaws.com"],
        "aws.cloudtrail.user_identity.invoked_by": "secretsmanager.amazonaws.com",
    },
    "s3_getobject_data_event": {
        "user.name": "i-0ffee1234c0ffee00",
        "event.action": "GetObject",
        "aws.cloudtrail.event_category": "Data",
        "aws.cloudtrail.target": ["acme-prod-exports"],
        "aws.cloudtrail.resources.arn": [
            "arn:aws:s3:::acme-prod-exports/exports/customers.csv",
            "arn:aws:s3:::acme-prod-exports",
        ],
    },
    "eventbridge_ecr_putimage": {
        "event.id": "0a1b2c3d-0024-4000-8000-000000000024",
        "registry.operation": "push",
        "container.image.tag": ["v1.5.0"],
    },
    "eventbridge_consolelogin": {
        "event.id": "0a1b2c3d-0025-4000-8000-000000000025",
        "event.action": "ConsoleLogin",
        "aws.cloudtrail.console_login.mfa_used": False,
    },
}


def test_fixture_table_covers_every_file() -> None:
    """Every CloudTrail fixture file (but the multi-record envelope) has expectations."""
    names = {p.stem for p in (RECORDS / "cloudtrail").glob("*.json")}
    assert names - {"s3_delivery_envelope"} == set(EXPECTED)
    assert len(names) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_cloudtrail_fixture(name: str) -> None:
    """Each fixture yields one event with the expected ECS fields and the common ones."""
    (event,) = normalize_fixture("cloudtrail", name)
    check(event, EXPECTED[name])
    assert event.family == "cloudtrail"
    assert event.logsource == LogSource("aws", "cloudtrail")
    check(event, {"event.kind": "event", "event.dataset": "aws.cloudtrail"})
    assert event.ecs["event"]["id"] == event.id == event.raw["eventID"]
    assert event.ecs["@timestamp"] == event.raw["eventTime"]
    assert event.ecs["cloud"]["provider"] == "aws"


def test_s3_delivery_envelope_yields_each_record() -> None:
    """``{"Records": [...]}`` gives one event per record, raw = the record itself."""
    doc = fixture("cloudtrail", "s3_delivery_envelope")
    events = normalize_fixture("cloudtrail", "s3_delivery_envelope", source="cloudtrail")
    assert [e.ecs["event"]["action"] for e in events] == ["GetCallerIdentity", "CreateAccessKey"]
    assert [e.raw for e in events] == doc["Records"]


def test_eventbridge_raw_is_the_detail() -> None:
    """An EventBridge event is unwrapped: ``raw`` is the CloudTrail record in ``detail``."""
    doc = fixture("cloudtrail", "eventbridge_ecr_putimage")
    (event,) = normalize_fixture("cloudtrail", "eventbridge_ecr_putimage")
    assert event.raw == doc["detail"]


def test_timestamp_is_epoch_seconds() -> None:
    """``Event.timestamp`` is the event time in epoch seconds."""
    (event,) = normalize_fixture("cloudtrail", "sts_assumerole")
    assert event.timestamp == 1715677921.0


def test_otrf_sample_normalizes_completely() -> None:
    """All 103 OTRF records (Logstash export with ``@timestamp``) normalize."""
    path = SAMPLES / "otrf-cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
    normalizer = Normalizer("auto")
    events = []
    for line in path.read_bytes().splitlines():
        got, errors = normalizer.normalize(decode_json(line))
        assert not errors
        events.extend(got)
    assert len(events) == 103
    assert {e.ecs["user"]["name"] for e in events} >= {"pedro"}
    assert all(e.ecs["@timestamp"].endswith("Z") for e in events)
    assume = [e for e in events if e.ecs["event"]["action"] == "AssumeRole"]
    assert assume and all(e.ecs["event"]["category"] == ["authentication"] for e in assume)


def test_missing_event_id_gets_a_stable_content_hash() -> None:
    """Without ``eventID`` the id is a hash of the record: equal records, equal ids."""
    record = dict(fixture("cloudtrail", "sts_assumerole"))
    del record["eventID"]
    first = normalize_cloudtrail(record)
    second = normalize_cloudtrail(dict(record))
    assert first.id == second.id
    assert len(first.id) == 32
    assert normalize_cloudtrail(dict(record, awsRegion="us-east-2")).id != first.id


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"eventName": None}, "missing_field", "eventName"),
        ({"eventSource": ""}, "missing_field", "eventSource"),
        ({"eventTime": None}, "missing_field", "eventTime"),
        ({"eventTime": "yesterday"}, "invalid_time", "eventTime"),
        ({"eventName": {"x": 1}}, "wrong_type", "eventName"),
        ({"userIdentity": "alice"}, "wrong_type", "userIdentity"),
        ({"sourceIPAddress": ["1.2.3.4"]}, "wrong_type", "sourceIPAddress"),
        ({"requestParameters": [1, 2]}, "wrong_type", "requestParameters"),
    ],
)
def test_malformed_records_raise_normalize_error(
    change: dict[str, Any], reason: str, field: str
) -> None:
    """Missing required fields and wrong types are NormalizeErrors naming the field."""
    record = dict(fixture("cloudtrail", "sts_assumerole"), **change)
    with pytest.raises(NormalizeError) as info:
        normalize_cloudtrail(record)
    assert info.value.reason == reason
    assert field in info.value.detail


def test_numbers_where_strings_expected_are_rendered() -> None:
    """A numeric account id (seen in hand-made exports) becomes text, not an error."""
    record = dict(fixture("cloudtrail", "sts_assumerole"), recipientAccountId=111122223333)
    event = normalize_cloudtrail(record)
    assert event.ecs["cloud"]["account"]["id"] == "111122223333"


def test_bad_record_in_envelope_does_not_sink_the_others() -> None:
    """One broken record of an S3 delivery yields one located error, the rest events."""
    doc = fixture("cloudtrail", "s3_delivery_envelope")
    doc["Records"].insert(1, {"eventSource": "sts.amazonaws.com"})
    events, errors = Normalizer("auto").normalize(doc)
    assert len(events) == 2
    assert [(e.reason, e.detail) for e in errors] == [("missing_field", "Records[1]: eventName")]
