"""CI audit events to ECS: GitHub audit log (REST export and streaming) and GitLab audit events.

Mapping tables: docs/mappings/github.md and docs/mappings/gitlab.md.
"""

from __future__ import annotations

from typing import Any

from detector.errors import NormalizeError
from detector.models import NO_ORIGIN, Event, LogSource, Origin
from detector.normalize.fields import (
    compact,
    content_id,
    is_ip,
    new_event,
    obj,
    required_text,
    text,
    timestamp,
    unique,
)

GITHUB = LogSource("github", "audit")
GITLAB = LogSource("gitlab", "audit")

#: GitHub top-level fields copied to ``github.*`` when they are scalars or lists of scalars.
_GITHUB_KEYS = (
    "org",
    "org_id",
    "repo",
    "repo_id",
    "repository",
    "repository_public",
    "visibility",
    "public_repo",
    "business",
    "business_id",
    "team",
    "user",
    "user_id",
    "operation_type",
    "programmatic_access_type",
    "token_id",
    "hashed_token",
    "token_scopes",
    "transport_protocol_name",
    "integration",
    "oauth_application_id",
    "permission",
    "actor_is_bot",
    "external_identity_nameid",
    "external_identity_username",
    "workflow_id",
    "workflow_run_id",
    "head_branch",
    "head_sha",
    "event",
    "name",
    "conclusion",
    "environment_name",
    "runner_name",
    "runner_group_name",
    "request_id",
)
#: GitLab fields copied to ``gitlab.*`` (top level first, then ``details``).
_GITLAB_KEYS = (
    "entity_type",
    "entity_id",
    "entity_path",
    "target_type",
    "target_id",
    "target_details",
    "author_class",
    "custom_message",
    "event_type",
    "change",
    "from",
    "to",
    "add",
    "remove",
    "as",
    "failed_login",
    "with",
)
_SCALARS = (str, int, float, bool)

_GITHUB_CLASSES: tuple[tuple[tuple[str, ...], list[str]], ...] = (
    (("git.",), ["web"]),
    (("workflows.", "workflow_run."), ["process"]),
    (
        (
            "personal_access_token.",
            "oauth_",
            "org.add_member",
            "org.remove_member",
            "org.update_member",
            "team.",
            "business.add_admin",
            "business.remove_admin",
            "role.",
            "org_credential_authorization.",
            "two_factor_authentication.",
            "user.",
            "public_key.",
            "deploy_key.",
            "ssh_certificate_authority.",
        ),
        ["iam"],
    ),
)


_VERB_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("create", "add", "new", "invite", "generate", "register"), "creation"),
    (("destroy", "delete", "remove", "revoke", "expire"), "deletion"),
    (("clone", "fetch", "download", "access", "read", "git", "view"), "access"),
)


def _verb(action: str) -> list[str]:
    """ECS ``event.type`` from the verbs of an action (``repo.create``, ``member_removed``)."""
    words = action.lower().replace(".", "_").split("_")
    for prefixes, kind in _VERB_WORDS:
        if any(w.startswith(prefixes) for w in words):
            return [kind]
    return ["change"]


def _copy(record: dict[str, Any], keys: tuple[str, ...], into: dict[str, Any]) -> None:
    for key in keys:
        value = record.get(key)
        if value is None or key in into:
            continue
        if isinstance(value, _SCALARS) or (
            type(value) is list and all(isinstance(v, _SCALARS) for v in value)
        ):
            into[key] = value


def normalize_github(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One GitHub audit-log event (REST ``/audit-log`` export or audit-log streaming)."""
    action = required_text(record, "action")
    when = record.get("@timestamp")
    if when is None:
        when = record.get("created_at")
    epoch, iso = timestamp(when, "@timestamp")
    actor = text(record, "actor")
    target_user = text(record, "user")
    address = text(record, "actor_ip")
    event_id = text(record, "_document_id") or content_id(record)
    category = next((c for p, c in _GITHUB_CLASSES if action.startswith(p)), ["configuration"])

    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": _verb(action),
            "action": action,
            "outcome": "success",
            "provider": "github",
            "dataset": "github.audit",
            "id": event_id,
        },
    }
    user = compact({"name": actor, "id": text(record, "actor_id")})
    if target_user:
        user["target"] = compact({"name": target_user, "id": text(record, "user_id")})
    if user:
        ecs["user"] = user
    if address:
        src: dict[str, Any] = {"address": address}
        if is_ip(address):
            src["ip"] = address
        location = obj(record, "actor_location")
        country = text(location, "country_code")
        if country:
            src["geo"] = {"country_iso_code": country}
        ecs["source"] = src
    agent = text(record, "user_agent")
    if agent:
        ecs["user_agent"] = {"original": agent}
    github: dict[str, Any] = {}
    _copy(record, _GITHUB_KEYS, github)
    if github:
        ecs["github"] = github
    related = compact(
        {
            "user": unique(actor, target_user) or None,
            "ip": [address] if address and is_ip(address) else None,
        }
    )
    if related:
        ecs["related"] = related
    return new_event(event_id, epoch, "ci", GITHUB, ecs, record, origin)


def _gitlab_action(record: dict[str, Any], details: dict[str, Any]) -> str:
    for source, key in ((record, "event_name"), (details, "event_name"), (record, "event_type")):
        value = text(source, key)
        if value:
            return value
    for verb in ("add", "remove", "change"):
        value = text(details, verb)
        if value:
            return f"{verb}_{value}".replace(" ", "_").lower()
    if "failed_login" in details:
        return "failed_login"
    return "audit_event"


def normalize_gitlab(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One GitLab audit event (REST ``/audit_events`` or streaming destination shape)."""
    details = obj(record, "details")
    epoch, iso = timestamp(record.get("created_at"), "created_at")
    required_text(record, "entity_type")
    author_name = text(record, "author_name") or text(details, "author_name")
    author_id = text(record, "author_id")
    if not author_name and not author_id:
        raise NormalizeError("missing_field", "author_id")
    action = _gitlab_action(record, details)
    address = text(record, "ip_address") or text(details, "ip_address")
    source_id = text(record, "id")
    event_id = f"gitlab:{source_id}" if source_id else content_id(record)
    low = action.lower()
    failed = "failed_login" in details or "fail" in low
    if "login" in low or "authenticat" in low or "failed_login" in details:
        category, kind = ["authentication"], ["start"]
    elif any(w in low for w in ("member", "user", "token", "key", "access", "role", "password")):
        category, kind = ["iam"], _verb(low)
    else:
        category, kind = ["configuration"], _verb(low)

    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": [*kind],
            "action": action,
            "outcome": "failure" if failed else "success",
            "provider": "gitlab",
            "dataset": "gitlab.audit",
            "id": event_id,
        },
        "user": compact({"name": author_name, "id": author_id}),
    }
    if address:
        src: dict[str, Any] = {"address": address}
        if is_ip(address):
            src["ip"] = address
        ecs["source"] = src
    gitlab: dict[str, Any] = {}
    _copy(record, _GITLAB_KEYS, gitlab)
    _copy(details, _GITLAB_KEYS, gitlab)
    if gitlab:
        ecs["gitlab"] = gitlab
    related = compact(
        {
            "user": unique(author_name) or None,
            "ip": [address] if address and is_ip(address) else None,
        }
    )
    if related:
        ecs["related"] = related
    return new_event(event_id, epoch, "ci", GITLAB, ecs, record, origin)


def is_github(record: dict[str, Any]) -> bool:
    """Shape test: GitHub events have ``action`` and ``@timestamp``/``actor``/``_document_id``."""
    return "action" in record and (
        "@timestamp" in record or "_document_id" in record or "actor" in record
    )


def is_gitlab(record: dict[str, Any]) -> bool:
    """Shape test: GitLab audit events have ``entity_type`` plus ``author_id`` or ``details``."""
    return "entity_type" in record and ("author_id" in record or "details" in record)


def normalize_ci(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """A CI-family record of either kind, told apart by shape."""
    if is_gitlab(record):
        return normalize_gitlab(record, origin)
    if is_github(record):
        return normalize_github(record, origin)
    raise NormalizeError("unrecognized_record", "neither a GitHub nor a GitLab audit event")
