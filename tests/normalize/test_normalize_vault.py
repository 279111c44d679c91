"""Vault audit entries normalize to ECS with HMAC'd values kept exactly as logged."""

from __future__ import annotations

from typing import Any

import pytest
from ecs_helpers import RECORDS, check, fixture, normalize_fixture

from detector.errors import NormalizeError
from detector.models import LogSource
from detector.normalize import normalize_vault

GHA = "jwt-repo:acme-corp/payments-api:ref:refs/heads/main"

EXPECTED: dict[str, dict[str, Any]] = {
    "kv_read_request": {
        "user.name": "kubernetes-payments-api",
        "user.id": "7d2e3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6",
        "source.ip": "10.20.31.5",
        "source.port": 53422,
        "event.action": "read",
        "event.outcome": "unknown",
        "event.type": ["access"],
        "vault.type": "request",
        "vault.request.path": "secret/data/prod/payments/db",
        "vault.request.operation": "read",
        "vault.request.mount_type": "kv",
        "vault.auth.policies": ["default", "payments-read"],
        "vault.auth.token_type": "service",
        "vault.auth.metadata": {
            "role": "payments-api",
            "service_account_name": "payments-api",
            "service_account_namespace": "payments",
        },
        "user_agent.original": "vault/1.16.2 (+https://www.vaultproject.io/; go1.22.2)",
        "event.id": "9f1c2d3e-0001-4a5b-8c9d-0e1f2a3b4c5d:request",
    },
    "kv_read_response": {
        "event.outcome": "success",
        "vault.type": "response",
        "event.id": "9f1c2d3e-0001-4a5b-8c9d-0e1f2a3b4c5d:response",
    },
    "kv_write_request": {
        "user.name": "ci-deployer",
        "event.action": "update",
        "event.type": ["change"],
        "vault.request.path": "secret/data/prod/payments/api-key",
    },
    "kv_delete_request": {
        "user.name": "mallory",
        "source.ip": "198.51.100.77",
        "event.type": ["deletion"],
        "vault.request.path": "secret/metadata/prod/payments/db",
    },
    "kv_list_request": {"event.action": "list", "vault.request.path": "secret/metadata/prod/"},
    "permission_denied_request": {
        "event.outcome": "failure",
        "error.message": "1 error occurred:\n\t* permission denied\n\n",
        "vault.error": "1 error occurred:\n\t* permission denied\n\n",
        "vault.request.path": "secret/data/prod/billing/stripe",
    },
    "approle_login_request": {
        "user": None,
        "event.category": ["authentication"],
        "vault.request.path": "auth/approle/login",
        "vault.auth": None,
    },
    "approle_login_response": {
        "user.name": "approle",
        "event.category": ["authentication"],
        "event.outcome": "success",
        "vault.auth.metadata": {"role_name": "batch-jobs"},
    },
    "jwt_login_github_actions": {
        "user.name": GHA,
        "source.ip": "20.55.14.8",
        "vault.request.mount_type": "jwt",
        "vault.auth.metadata.repository": "acme-corp/payments-api",
        "vault.auth.policies": ["default", "gha-deploy"],
        "related.user": [GHA],
    },
    "userpass_login_failure": {
        "event.outcome": "failure",
        "error.message": "invalid username or password",
        "source.ip": "45.146.164.110",
        "vault.request.path": "auth/userpass/login/bob",
    },
    "token_create_orphan": {
        "user.name": "mallory",
        "event.category": ["iam"],
        "vault.request.path": "auth/token/create-orphan",
    },
    "sys_policy_write": {
        "user.name": "root",
        "vault.auth.policies": ["root"],
        "vault.request.path": "sys/policies/acl/payments-read",
        "event.category": ["configuration"],
    },
    "sys_audit_disable": {
        "event.action": "delete",
        "event.type": ["deletion"],
        "vault.request.path": "sys/audit/file",
    },
    "sys_mounts_enable": {"vault.request.path": "sys/mounts/exfil", "event.type": ["change"]},
    "sys_auth_enable": {"vault.request.path": "sys/auth/userpass2"},
    "database_creds_read": {
        "vault.request.path": "database/creds/readonly",
        "vault.request.mount_type": "database",
        "event.outcome": "success",
    },
    "transit_decrypt": {"vault.request.path": "transit/decrypt/payments"},
    "pki_issue": {"user.name": "cert-manager", "vault.request.mount_type": "pki"},
    "token_lookup_self": {"vault.request.path": "auth/token/lookup-self", "event.type": ["access"]},
    "namespace_kv_read_enterprise": {"vault.request.namespace": "team-b/"},
    "aws_creds_read": {"user.name": "mallory", "vault.request.path": "aws/creds/deploy"},
    "token_revoke_accessor": {"vault.request.path": "auth/token/revoke-accessor"},
}


def test_fixture_table_covers_every_file() -> None:
    """Every Vault fixture has expectations, and there are 20+ of them."""
    names = {p.stem for p in (RECORDS / "vault").glob("*.json")}
    assert names == set(EXPECTED)
    assert len(names) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_vault_fixture(name: str) -> None:
    """Each fixture yields one event with the expected ECS fields and its log source."""
    (event,) = normalize_fixture("vault", name)
    check(event, EXPECTED[name])
    assert event.family == "vault"
    assert event.logsource == LogSource("vault", "audit")
    check(event, {"event.provider": "vault", "event.dataset": "vault.audit"})


def test_hmac_values_are_kept_verbatim() -> None:
    """Accessor and client token HMACs pass through unchanged, and ``raw`` is untouched."""
    record = fixture("vault", "kv_read_request")
    (event,) = normalize_fixture("vault", "kv_read_request")
    assert event.ecs["vault"]["auth"]["accessor"] == record["auth"]["accessor"]
    assert event.ecs["vault"]["auth"]["accessor"].startswith("hmac-sha256:")
    assert event.ecs["vault"]["auth"]["client_token"] == record["auth"]["client_token"]
    assert event.raw == record


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "audit"}, "wrong_type"),
        ({"type": None}, "missing_field"),
        ({"time": None}, "missing_field"),
        ({"request": None}, "missing_field"),
        ({"request": "read"}, "wrong_type"),
        ({"auth": {"policies": "root"}}, "wrong_type"),
    ],
)
def test_malformed_vault_entries(change: dict[str, Any], reason: str) -> None:
    """Missing/mistyped Vault fields raise NormalizeError."""
    record = dict(fixture("vault", "kv_read_request"), **change)
    with pytest.raises(NormalizeError) as info:
        normalize_vault(record)
    assert info.value.reason == reason
