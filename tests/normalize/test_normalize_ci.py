"""CI audit events (GitHub, GitLab) normalize to ECS: actor, address, action, target."""

from __future__ import annotations

from typing import Any

import pytest
from ecs_helpers import RECORDS, check, fixture, normalize_fixture

from detector.errors import NormalizeError
from detector.models import LogSource
from detector.normalize import normalize_github, normalize_gitlab

EXPECTED: dict[str, dict[str, Any]] = {
    "github_repo_create": {
        "user.name": "alice",
        "user.id": "1001",
        "source.ip": "203.0.113.10",
        "source.geo.country_iso_code": "DE",
        "event.action": "repo.create",
        "event.type": ["creation"],
        "github.repo": "acme-corp/new-service",
        "github.org": "acme-corp",
        "@timestamp": "2024-05-14T10:00:01Z",
    },
    "github_repo_destroy": {
        "user.name": "mallory",
        "source.ip": "185.220.101.34",
        "event.type": ["deletion"],
        "github.repo": "acme-corp/payments-api",
    },
    "github_repo_access_public": {"event.action": "repo.access", "github.visibility": "public"},
    "github_org_add_member": {
        "event.category": ["iam"],
        "event.type": ["creation"],
        "user.target.name": "eve",
        "related.user": ["alice", "eve"],
        "github.permission": "admin",
    },
    "github_org_remove_member": {"event.type": ["deletion"], "user.target.name": "bob"},
    "github_protected_branch_destroy": {
        "event.action": "protected_branch.destroy",
        "github.name": "main",
        "event.type": ["deletion"],
    },
    "github_git_clone_pat": {
        "user.name": "ci-bot",
        "source.ip": "20.55.14.8",
        "event.category": ["web"],
        "event.type": ["access"],
        "github.programmatic_access_type": "Personal access token (classic)",
        "github.token_id": 88812345,
        "github.hashed_token": "nS1X2mJcK9eR8yQwT5vL3pZ0aBcDeFgHiJkLmNoPqRs=",
        "github.token_scopes": "repo,workflow",
        "user_agent.original": "git/2.43.0",
    },
    "github_git_push_deploy_key": {
        "user.name": "deploy-key-prod",
        "github.programmatic_access_type": "Deploy key",
        "github.transport_protocol_name": "ssh",
    },
    "github_workflow_completed": {
        "event.category": ["process"],
        "github.workflow_run_id": 9876543210,
        "github.head_branch": "main",
        "github.conclusion": "success",
    },
    "github_pat_created": {
        "user.name": "bob",
        "event.category": ["iam"],
        "event.type": ["creation"],
        "github.programmatic_access_type": "Fine-grained personal access token",
    },
    "github_oauth_app_created": {"event.category": ["iam"], "github.oauth_application_id": 8877},
    "github_hook_create": {
        "event.action": "hook.create",
        "event.type": ["creation"],
        "user.name": "mallory",
    },
    "github_actions_secret_update": {"event.type": ["change"], "github.name": "AWS_ROLE_ARN"},
    "github_secret_scanning_disable": {
        "event.action": "repository_secret_scanning.disable",
        "source.ip": "185.220.101.34",
    },
    "github_business_add_admin_rest": {
        "user.name": "alice",
        "user.target.name": "eve",
        "source": None,
        "github.business": "acme",
        "event.category": ["iam"],
    },
    "github_rest_export_team_add_member": {
        "github.team": "acme-corp/platform-admins",
        "user.target.name": "eve",
        "event.category": ["iam"],
    },
    "gitlab_member_added": {
        "user.name": "Alice Admin",
        "user.id": "201",
        "source.ip": "203.0.113.10",
        "event.action": "member_created",
        "event.category": ["iam"],
        "event.type": ["creation"],
        "gitlab.target_details": "Eve Intruder",
        "gitlab.as": "Maintainer",
        "gitlab.entity_path": "acme/payments-api",
        "event.id": "gitlab:7001",
    },
    "gitlab_visibility_public": {
        "user.name": "Mallory",
        "event.action": "project_visibility_level_updated",
        "gitlab.change": "visibility",
        "gitlab.from": "Private",
        "gitlab.to": "Public",
    },
    "gitlab_failed_login": {
        "user.name": "bob",
        "event.action": "failed_login",
        "event.category": ["authentication"],
        "event.outcome": "failure",
        "source.ip": "45.146.164.110",
    },
    "gitlab_pat_created": {
        "event.action": "personal_access_token_created",
        "event.category": ["iam"],
        "gitlab.target_type": "PersonalAccessToken",
    },
    "gitlab_git_operation_streaming": {
        "user.name": "ci-bot",
        "source.ip": "20.55.14.8",
        "event.action": "repository_git_operation",
        "event.type": ["access"],
        "gitlab.entity_path": "acme/payments-api",
        "gitlab.event_type": "repository_git_operation",
        "@timestamp": "2024-05-14T10:07:00.123Z",
    },
    "gitlab_protected_branch_removed": {
        "event.type": ["deletion"],
        "gitlab.target_details": "main",
    },
    "gitlab_group_member_removed": {
        "event.action": "remove_user_access",
        "event.category": ["iam"],
        "event.type": ["deletion"],
        "gitlab.entity_type": "Group",
    },
    "gitlab_ci_variable_created": {
        "event.type": ["creation"],
        "gitlab.target_details": "AWS_SECRET_ACCESS_KEY",
    },
    "gitlab_deploy_key_added": {
        "event.action": "add_deploy_key",
        "event.category": ["iam"],
        "event.type": ["creation"],
    },
    "gitlab_project_deleted_api_ipv6": {
        "source.ip": "2001:db8::bad",
        "event.type": ["deletion"],
        "related.ip": ["2001:db8::bad"],
    },
}


def test_fixture_table_covers_every_file() -> None:
    """Every CI fixture has expectations, and there are 20+ of them."""
    names = {p.stem for p in (RECORDS / "ci").glob("*.json")}
    assert names == set(EXPECTED)
    assert len(names) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ci_fixture(name: str) -> None:
    """Each fixture yields one event with the expected ECS fields and its log source."""
    (event,) = normalize_fixture("ci", name)
    check(event, EXPECTED[name])
    assert event.family == "ci"
    vendor = name.split("_", maxsplit=1)[0]
    assert event.logsource == LogSource(vendor, "audit")
    check(event, {"event.provider": vendor, "event.dataset": f"{vendor}.audit"})


def test_github_document_id_is_the_event_id() -> None:
    """GitHub's ``_document_id`` is the event id; ``@timestamp`` ms gives epoch seconds."""
    (event,) = normalize_fixture("ci", "github_repo_create")
    assert event.id == "GhDoc0001-xYz_AbCdEfGh"
    assert event.timestamp == 1715680801.0


def test_github_iso_created_at_without_timestamp() -> None:
    """An export with only an ISO ``created_at`` still has its time."""
    record = {"action": "repo.create", "actor": "a", "created_at": "2024-05-14T10:00:00Z"}
    assert normalize_github(record).ecs["@timestamp"] == "2024-05-14T10:00:00Z"


@pytest.mark.parametrize(
    ("fn", "record", "reason"),
    [
        (normalize_github, {"actor": "a", "@timestamp": 1}, "missing_field"),
        (normalize_github, {"action": "x", "actor": "a"}, "missing_field"),
        (normalize_github, {"action": "x", "@timestamp": True}, "wrong_type"),
        (normalize_github, {"action": "x", "@timestamp": 1, "actor": {"l": 1}}, "wrong_type"),
        (
            normalize_gitlab,
            {"entity_type": "Project", "created_at": "2024-05-14T10:00:00Z"},
            "missing_field",
        ),
        (normalize_gitlab, {"entity_type": "Project", "author_id": 1}, "missing_field"),
        (
            normalize_gitlab,
            {
                "entity_type": "Project",
                "author_id": 1,
                "created_at": "2024-05-14T10:00:00Z",
                "details": [],
            },
            "wrong_type",
        ),
    ],
)
def test_malformed_ci_events(fn: Any, record: dict[str, Any], reason: str) -> None:
    """Missing/mistyped CI fields raise NormalizeError with the reason."""
    with pytest.raises(NormalizeError) as info:
        fn(record)
    assert info.value.reason == reason


def test_raw_is_the_native_record() -> None:
    """``raw`` is the record as decoded, so native Sigma rules see GitHub's field names."""
    record = fixture("ci", "github_git_clone_pat")
    (event,) = normalize_fixture("ci", "github_git_clone_pat")
    assert event.raw == record
    assert event.raw["programmatic_access_type"] == "Personal access token (classic)"
