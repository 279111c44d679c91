"""HashiCorp Vault audit-device entries to ECS (mapping table: docs/mappings/vault.md).

HMAC'd values (``hmac-sha256:...``) are kept exactly as logged: they can be compared
with ``vault audit hash`` output but never reversed here.
"""

from __future__ import annotations

from typing import Any

from detector.errors import NormalizeError
from detector.models import NO_ORIGIN, Event, LogSource, Origin
from detector.normalize.fields import (
    compact,
    content_id,
    new_event,
    obj,
    required_text,
    source_fields,
    text,
    timestamp,
    unique,
)

LOGSOURCE = LogSource("vault", "audit")

_OPERATION_TYPE = {
    "read": ["access"],
    "list": ["access"],
    "create": ["creation"],
    "update": ["change"],
    "delete": ["deletion"],
    "patch": ["change"],
}


def _strings(value: Any) -> list[str] | None:
    if value is None:
        return None
    if type(value) is list and all(type(v) is str for v in value):
        return value
    raise NormalizeError("wrong_type", "policies: expected an array of strings")


def normalize_vault(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One Vault audit entry of ``type`` ``request`` or ``response``."""
    entry_type = required_text(record, "type")
    if entry_type not in ("request", "response"):
        raise NormalizeError("wrong_type", f"type: {entry_type[:32]!r} is not request/response")
    epoch, iso = timestamp(record.get("time"), "time")
    request = obj(record, "request")
    if not request:
        raise NormalizeError("missing_field", "request")
    auth = obj(record, "auth")
    operation = required_text(request, "operation")
    path = text(request, "path") or ""
    request_id = text(request, "id")
    event_id = f"{request_id}:{entry_type}" if request_id else content_id(record)
    error = text(record, "error")
    display_name = text(auth, "display_name")
    entity_id = text(auth, "entity_id")
    address = text(request, "remote_address")
    port = request.get("remote_port")

    if error:
        outcome = "failure"
    elif entry_type == "response":
        outcome = "success"
    else:
        outcome = "unknown"
    if path.startswith("auth/") and "/login" in path:
        category, kind = ["authentication"], ["start"]
    elif path.startswith(("sys/policy", "sys/policies", "sys/auth", "sys/mounts", "sys/audit")):
        category, kind = ["configuration"], _OPERATION_TYPE.get(operation, ["change"])
    elif path.startswith(("auth/token/create", "identity/")):
        category, kind = ["iam"], _OPERATION_TYPE.get(operation, ["change"])
    else:
        category, kind = ["configuration"], _OPERATION_TYPE.get(operation, ["info"])

    namespace = obj(request, "namespace")
    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": [*kind],
            "action": operation,
            "outcome": outcome,
            "provider": "vault",
            "dataset": "vault.audit",
            "id": event_id,
        },
    }
    user = compact({"name": display_name, "id": entity_id or None})
    if user:
        ecs["user"] = user
    src = source_fields(address, port if type(port) is int else None)
    if src:
        ecs["source"] = src
    headers = obj(request, "headers")
    agent = headers.get("user-agent")
    if type(agent) is list and agent and type(agent[0]) is str:
        ecs["user_agent"] = {"original": agent[0]}
    if error:
        ecs["error"] = {"message": error}
    ecs["vault"] = compact(
        {
            "type": entry_type,
            "error": error or None,
            "request": compact(
                {
                    "id": request_id,
                    "path": path or None,
                    "operation": operation,
                    "mount_type": text(request, "mount_type"),
                    "mount_point": text(request, "mount_point"),
                    "namespace": text(namespace, "path") or text(namespace, "id"),
                    "client_token_accessor": text(request, "client_token_accessor"),
                }
            ),
            "auth": compact(
                {
                    "accessor": text(auth, "accessor"),
                    "client_token": text(auth, "client_token"),
                    "display_name": display_name,
                    "policies": _strings(auth.get("policies")),
                    "token_policies": _strings(auth.get("token_policies")),
                    "token_type": text(auth, "token_type"),
                    "entity_id": entity_id or None,
                    "metadata": obj(auth, "metadata") or None,
                }
            )
            or None,
        }
    )
    related = compact(
        {
            "user": unique(display_name) or None,
            "ip": [src["ip"]] if src and "ip" in src else None,
        }
    )
    if related:
        ecs["related"] = related
    return new_event(event_id, epoch, "vault", LOGSOURCE, ecs, record, origin)


def is_vault(record: dict[str, Any]) -> bool:
    """Shape test: ``type`` request/response with a ``request`` object."""
    return record.get("type") in ("request", "response") and "request" in record
