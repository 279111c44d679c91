"""Registry access events to ECS: Docker Distribution notifications and Harbor audit logs.

Mapping tables: docs/mappings/distribution.md and docs/mappings/harbor.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from detector.errors import NormalizeError
from detector.models import NO_ORIGIN, Event, LogSource, Origin
from detector.normalize.fields import (
    array,
    compact,
    content_id,
    flag,
    is_ip,
    new_event,
    obj,
    required_text,
    source_fields,
    split_host_port,
    text,
    timestamp,
    unique,
)

DISTRIBUTION = LogSource("distribution", "registry")
HARBOR = LogSource("harbor", "audit")

_OPERATIONS = ("pull", "push", "delete", "mount")
#: ECS category and type per registry operation.
_OP_CLASS: dict[str, tuple[list[str], list[str]]] = {
    "pull": (["web"], ["access"]),
    "push": (["configuration"], ["creation"]),
    "mount": (["configuration"], ["creation"]),
    "delete": (["configuration"], ["deletion"]),
}
_HARBOR_WEBHOOK_OPS = {
    "PUSH_ARTIFACT": "push",
    "PULL_ARTIFACT": "pull",
    "DELETE_ARTIFACT": "delete",
}
_HARBOR_IAM_RESOURCES = ("user", "robot", "project_member", "member", "user_group")


def _url_fields(url: str | None) -> dict[str, Any] | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return {"original": url}
    return (
        compact(
            {
                "original": url,
                "scheme": parts.scheme or None,
                "domain": parts.hostname,
                "port": parts.port if parts.port else None,
                "path": parts.path or None,
            }
        )
        if parts.scheme
        else {"original": url}
    )


def _image(name: str | None, tags: list[str], digests: list[str]) -> dict[str, Any] | None:
    if not name:
        return None
    image: dict[str, Any] = {"name": name}
    if tags:
        image["tag"] = tags
    if digests:
        image["hash"] = {"all": digests}
    return {"image": image}


def normalize_distribution(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One Docker Distribution notification event (an item of ``events[]``)."""
    action = required_text(record, "action")
    epoch, iso = timestamp(record.get("timestamp"), "timestamp")
    target = obj(record, "target")
    if not target:
        raise NormalizeError("missing_field", "target")
    request = obj(record, "request")
    actor = obj(record, "actor")
    origin_src = obj(record, "source")
    repo = text(target, "repository")
    tag = text(target, "tag")
    digest = text(target, "digest")
    event_id = text(record, "id") or content_id(record)
    user_name = text(actor, "name")
    addr = text(request, "addr")
    host, port = split_host_port(addr) if addr else (None, None)
    registry_host = text(request, "host")
    op = action if action in _OPERATIONS else None
    category, kind = _OP_CLASS.get(action, (["web"], ["info"]))

    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": [*kind],
            "action": action,
            "outcome": "success",
            "provider": "distribution",
            "dataset": "distribution.notification",
            "id": event_id,
        },
    }
    if user_name:
        ecs["user"] = {"name": user_name}
    src = source_fields(host, port)
    if src:
        ecs["source"] = src
    agent = text(request, "useragent")
    if agent:
        ecs["user_agent"] = {"original": agent}
    method = text(request, "method")
    if method:
        ecs["http"] = {"request": compact({"method": method, "id": text(request, "id")})}
    url = _url_fields(text(target, "url"))
    if url:
        ecs["url"] = url
    container = _image(repo, [tag] if tag else [], [digest] if digest else [])
    if container:
        ecs["container"] = container
    ecs["registry"] = compact({"operation": op, "name": registry_host})
    ecs["distribution"] = compact(
        {
            "target": compact(
                {
                    "media_type": text(target, "mediaType"),
                    "size": target.get("size") if type(target.get("size")) is int else None,
                    "from_repository": text(target, "fromRepository"),
                }
            )
            or None,
            "request": compact({"id": text(request, "id"), "host": registry_host}) or None,
            "source": compact(
                {"addr": text(origin_src, "addr"), "instance_id": text(origin_src, "instanceID")}
            )
            or None,
        }
    )
    related = compact(
        {
            "user": unique(user_name) or None,
            "ip": [host] if host and is_ip(host) else None,
            "hosts": unique(
                host if host and not is_ip(host) else None,
                split_host_port(registry_host)[0] if registry_host else None,
            )
            or None,
        }
    )
    if related:
        ecs["related"] = related
    return new_event(event_id, epoch, "registry", DISTRIBUTION, ecs, record, origin)


def _harbor_reference(resource: str) -> tuple[str, list[str], list[str]]:
    """``project/repo:tag`` or ``project/repo@sha256:...`` to name, tags, digests."""
    if "@" in resource:
        name, _, digest = resource.partition("@")
        return name, [], [digest]
    head, sep, last = resource.rpartition("/")
    if ":" in last:
        repo, _, ref = last.partition(":")
        name = f"{head}{sep}{repo}"
        if ref.startswith("sha256:"):
            return name, [], [ref]
        return name, [ref], []
    return resource, [], []


def normalize_harbor(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """One Harbor audit-log entry (``/audit-logs`` or ``/auditlog-exts``) or artifact webhook."""
    if "event_data" in record:
        return _harbor_webhook(record, origin)
    operation = required_text(record, "operation")
    epoch, iso = timestamp(record.get("op_time"), "op_time")
    resource = text(record, "resource")
    resource_type = text(record, "resource_type") or ""
    user_name = text(record, "username")
    source_id = text(record, "id")
    event_id = f"harbor:{source_id}" if source_id else content_id(record)
    result = flag(record.get("operation_result"))
    event_type = text(record, "event_type")

    op: str | None = None
    if resource_type in ("artifact", "repository", "tag", ""):
        op = {"pull": "pull", "create": "push", "push": "push", "delete": "delete"}.get(operation)
    if op is not None:
        category, kind = _OP_CLASS[op]
    elif operation in ("login", "logout"):
        category, kind = ["authentication"], ["start" if operation == "login" else "end"]
    else:
        kind = {"create": ["creation"], "delete": ["deletion"]}.get(operation, ["change"])
        category = ["iam"] if resource_type in _HARBOR_IAM_RESOURCES else ["configuration"]

    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": [*kind],
            "action": event_type or operation,
            "outcome": "failure" if result is False else "success",
            "provider": "harbor",
            "dataset": "harbor.audit",
            "id": event_id,
        },
    }
    if user_name:
        ecs["user"] = {"name": user_name}
        ecs["related"] = {"user": [user_name]}
    if op is not None and resource:
        name, tags, digests = _harbor_reference(resource)
        container = _image(name, tags, digests)
        if container:
            ecs["container"] = container
        ecs["registry"] = {"operation": op}
    ecs["harbor"] = compact(
        {
            "id": source_id,
            "operation": operation,
            "event_type": event_type,
            "resource": resource,
            "resource_type": resource_type or None,
            "operation_description": text(record, "operation_description"),
            "operation_result": result,
        }
    )
    return new_event(event_id, epoch, "registry", HARBOR, ecs, record, origin)


def _harbor_webhook(record: dict[str, Any], origin: Origin) -> Event:
    """A Harbor artifact webhook payload (``type``, ``occur_at``, ``operator``, ``event_data``)."""
    kind_name = required_text(record, "type")
    epoch, iso = timestamp(record.get("occur_at"), "occur_at")
    data = obj(record, "event_data")
    repo = obj(data, "repository")
    user_name = text(record, "operator")
    op = _HARBOR_WEBHOOK_OPS.get(kind_name)
    tags: list[str] = []
    digests: list[str] = []
    urls: list[str] = []
    for res in array(data, "resources"):
        if type(res) is not dict:
            raise NormalizeError("wrong_type", "event_data.resources[]: expected objects")
        if (tag := text(res, "tag")) and tag not in tags:
            tags.append(tag)
        if (digest := text(res, "digest")) and digest not in digests:
            digests.append(digest)
        if url := text(res, "resource_url"):
            urls.append(url)
    event_id = content_id(record)
    category, kind = _OP_CLASS.get(op or "", (["configuration"], ["change"]))
    ecs: dict[str, Any] = {
        "@timestamp": iso,
        "event": {
            "kind": "event",
            "category": [*category],  # a copy: the class tables are shared
            "type": [*kind],
            "action": kind_name.lower(),
            "outcome": "success",
            "provider": "harbor",
            "dataset": "harbor.audit",
            "id": event_id,
        },
    }
    if user_name:
        ecs["user"] = {"name": user_name}
        ecs["related"] = {"user": [user_name]}
    container = _image(text(repo, "repo_full_name"), tags, digests)
    if container:
        ecs["container"] = container
    registry_name = urls[0].partition("/")[0] if urls else None
    ecs["registry"] = compact({"operation": op, "name": registry_name})
    if urls:
        ecs["url"] = {"original": urls[0]}
    ecs["harbor"] = compact(
        {
            "event_type": kind_name,
            "resource": text(repo, "repo_full_name"),
            "resource_type": "artifact",
            "project": text(repo, "namespace"),
            "repo_type": text(repo, "repo_type"),
        }
    )
    return new_event(event_id, epoch, "registry", HARBOR, ecs, record, origin)


def is_distribution(record: dict[str, Any]) -> bool:
    """Shape test: a Distribution notification event has ``action`` and ``target``."""
    return "action" in record and "target" in record


def is_harbor(record: dict[str, Any]) -> bool:
    """Shape test: Harbor audit-log entry (``operation`` + ``op_time``) or artifact webhook."""
    return ("operation" in record and "op_time" in record) or (
        "event_data" in record and "type" in record and "occur_at" in record
    )


def normalize_registry(record: dict[str, Any], origin: Origin = NO_ORIGIN) -> Event:
    """A registry-family record of either kind, told apart by shape."""
    if is_distribution(record):
        return normalize_distribution(record, origin)
    if is_harbor(record):
        return normalize_harbor(record, origin)
    raise NormalizeError("unrecognized_record", "neither a Distribution event nor a Harbor entry")
