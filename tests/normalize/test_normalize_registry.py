"""Registry events (Docker Distribution, Harbor) normalize to ECS with image fields."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from ecs_helpers import RECORDS, SAMPLES, check, fixture, normalize_fixture

from detector.errors import NormalizeError
from detector.models import LogSource
from detector.normalize import Normalizer, normalize_distribution, normalize_harbor

D1 = "sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b"
D2 = "sha256:2b8fd9751c4c0f5dd266fcae00707e67a2545ef34f9a29354585f93dac906749"
D3 = "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f"
HOST = "registry.acme.internal"

EXPECTED: dict[str, dict[str, Any]] = {
    "distribution_pull_manifest_tag": {
        "user.name": "ci-bot",
        "source.ip": "10.20.30.40",
        "source.port": 51234,
        "event.action": "pull",
        "registry.operation": "pull",
        "registry.name": HOST,
        "container.image.name": "payments/api",
        "container.image.tag": ["v1.4.2"],
        "container.image.hash.all": [D1],
        "http.request.method": "GET",
        "url.domain": HOST,
        "url.path": f"/v2/payments/api/manifests/{D1}",
        "@timestamp": "2024-05-14T10:01:02.123456789Z",
    },
    "distribution_pull_blob": {
        "registry.operation": "pull",
        "container.image.tag": None,
        "container.image.hash.all": [D2],
    },
    "distribution_pull_anonymous_ipv6": {
        "user": None,
        "source.ip": "2001:db8::17",
        "source.port": 40022,
        "container.image.name": "library/alpine",
        "user_agent.original": "containerd/v1.7.11",
        "@timestamp": "2024-05-14T08:02:00Z",
    },
    "distribution_pull_external_ip": {
        "user.name": "deploy-prod",
        "source.ip": "185.220.101.34",
        "related.ip": ["185.220.101.34"],
        "related.user": ["deploy-prod"],
        "user_agent.original": "curl/8.5.0",
    },
    "distribution_push_manifest": {
        "registry.operation": "push",
        "http.request.method": "PUT",
        "event.type": ["creation"],
        "container.image.tag": ["v1.5.0"],
    },
    "distribution_delete_manifest": {
        "user.name": "mallory",
        "registry.operation": "delete",
        "http.request.method": "DELETE",
        "container.image.hash.all": [D1],
        "event.type": ["deletion"],
    },
    "distribution_delete_tag": {
        "registry.operation": "delete",
        "container.image.tag": ["v1.4.2"],
        "container.image.hash": None,
    },
    "distribution_mount_blob": {
        "registry.operation": "mount",
        "container.image.name": "team-b/api-copy",
        "distribution.target.from_repository": "payments/api",
    },
    "harbor_pull_tag": {
        "user.name": "robot$ci+puller",
        "event.action": "pull",
        "registry.operation": "pull",
        "container.image.name": "library/nginx",
        "container.image.tag": ["1.25.4"],
        "event.id": "harbor:40123",
        "harbor.resource_type": "artifact",
    },
    "harbor_pull_digest": {
        "user.name": "alice",
        "container.image.name": "payments/api",
        "container.image.hash.all": [D1],
    },
    "harbor_push_create_artifact": {
        "registry.operation": "push",
        "event.action": "create",
        "container.image.tag": ["v1.5.0"],
    },
    "harbor_delete_artifact": {
        "registry.operation": "delete",
        "container.image.name": "payments/api",
        "container.image.hash.all": [D1],
    },
    "harbor_delete_repository": {
        "registry.operation": "delete",
        "container.image.name": "payments/api",
        "user.name": "mallory",
    },
    "harbor_create_project": {
        "registry": None,
        "event.category": ["configuration"],
        "event.type": ["creation"],
        "harbor.resource": "team-c",
    },
    "harbor_create_robot": {
        "event.category": ["iam"],
        "harbor.resource": "robot$team-c+deployer",
    },
    "harbor_ext_create_user": {
        "event.action": "create_user",
        "event.outcome": "success",
        "event.category": ["iam"],
        "harbor.resource": "eve",
    },
    "harbor_ext_delete_user_failed": {
        "user.name": "eve",
        "event.outcome": "failure",
        "event.type": ["deletion"],
        "harbor.operation_result": False,
    },
    "harbor_ext_update_config": {
        "event.action": "update_configure",
        "event.type": ["change"],
    },
    "harbor_webhook_push": {
        "user.name": "robot$payments+ci-push",
        "event.action": "push_artifact",
        "registry.operation": "push",
        "registry.name": "harbor.acme.io",
        "container.image.name": "payments/api",
        "container.image.tag": ["v1.5.0"],
        "container.image.hash.all": [D1],
        "@timestamp": "2024-05-14T10:05:00Z",
    },
    "harbor_webhook_pull": {
        "registry.operation": "pull",
        "user.name": "alice",
        "url.original": "harbor.acme.io/payments/api:v1.4.2",
    },
    "harbor_webhook_delete": {"registry.operation": "delete", "user.name": "mallory"},
}


def test_fixture_table_covers_every_file() -> None:
    """Every registry fixture (but the multi-event envelope) has expectations; 20+ records."""
    names = {p.stem for p in (RECORDS / "registry").glob("*.json")}
    assert names - {"distribution_push_envelope_multi"} == set(EXPECTED)
    assert len(names) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_fixture(name: str) -> None:
    """Each fixture yields one event with the expected ECS fields."""
    (event,) = normalize_fixture("registry", name)
    check(event, EXPECTED[name])
    assert event.family == "registry"
    kind = "distribution" if name.startswith("distribution") else "harbor"
    dataset = "distribution.notification" if kind == "distribution" else "harbor.audit"
    assert event.logsource == (
        LogSource("distribution", "registry")
        if kind == "distribution"
        else LogSource("harbor", "audit")
    )
    check(event, {"event.kind": "event", "event.provider": kind, "event.dataset": dataset})


def test_envelope_gives_one_event_per_item() -> None:
    """A Distribution envelope with three push events yields three events in order."""
    events = normalize_fixture("registry", "distribution_push_envelope_multi", source="registry")
    assert [e.ecs["container"]["image"]["hash"]["all"] for e in events] == [[D2], [D3], [D1]]
    assert [e.raw for e in events] == fixture("registry", "distribution_push_envelope_multi")[
        "events"
    ]


@pytest.mark.parametrize("name", ["pull-event-envelope", "push-event-envelope"])
def test_distribution_project_examples(name: str) -> None:
    """The envelopes from the distribution docs normalize (shared samples)."""
    path = (
        SAMPLES / "docker-distribution/docs/content/about/notifications.examples" / f"{name}.json"
    )
    events, errors = Normalizer("auto").normalize(orjson.loads(path.read_bytes()))
    assert not errors
    assert events
    for event in events:
        assert event.ecs["registry"]["operation"] == name.split("-", maxsplit=1)[0]
        assert event.ecs["container"]["image"]["hash"]["all"][0].startswith("sha256:")


def test_distribution_pull_sample_fields() -> None:
    """The pull example: client address and port, registry host, tag and user agent."""
    path = SAMPLES / "docker-distribution/docs/content/about/notifications.examples"
    (event,) = Normalizer("registry").normalize(
        orjson.loads((path / "pull-event-envelope.json").read_bytes())
    )[0]
    check(
        event,
        {
            "source.ip": "192.168.64.11",
            "source.port": 42961,
            "registry.name": "192.168.100.227:5000",
            "container.image.name": "hello-world",
            "container.image.tag": ["latest"],
            "user_agent.original": "curl/7.38.0",
            "@timestamp": "2016-03-09T22:44:26.402973Z",
        },
    )


def test_delete_target_fragment_is_not_an_event() -> None:
    """The bare ``target`` fragment of the docs is no event: it is rejected, not guessed."""
    path = SAMPLES / "docker-distribution/docs/content/about/notifications.examples"
    doc = orjson.loads((path / "delete-event-target-fragment.json").read_bytes())
    events, errors = Normalizer("registry").normalize(doc)
    assert not events
    assert [e.reason for e in errors] == ["unrecognized_record"]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"action": "pull", "timestamp": "2024-05-14T10:00:00Z", "target": {}}, "missing_field"),
        ({"action": "pull", "timestamp": "2024-05-14T10:00:00Z", "target": "x"}, "wrong_type"),
        ({"action": ["pull"], "timestamp": "x", "target": {"a": 1}}, "wrong_type"),
        ({"action": "pull", "timestamp": "soon", "target": {"a": 1}}, "invalid_time"),
    ],
)
def test_malformed_distribution_events(record: dict[str, Any], reason: str) -> None:
    """Missing/mistyped Distribution fields raise NormalizeError."""
    with pytest.raises(NormalizeError) as info:
        normalize_distribution(record)
    assert info.value.reason == reason


def test_malformed_harbor_entry() -> None:
    """A Harbor entry without ``op_time`` is a missing-field error."""
    with pytest.raises(NormalizeError) as info:
        normalize_harbor({"id": 1, "operation": "pull", "resource": "a/b:c", "op_time": None})
    assert info.value.reason == "missing_field"
