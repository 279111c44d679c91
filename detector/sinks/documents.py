"""The alert documents, index template and bulk semantics shared by every search-engine sink.

Elasticsearch and OpenSearch speak the same bulk dialect; this module holds the one
definition of what we send (``create`` actions keyed by the alert id) and of what a
bulk response means:

* ``201`` created, or ``409`` version conflict (the id is already stored: a re-delivery),
  count as stored;
* ``429`` and ``5xx`` are transient: the item is sent again after a backoff;
* ``400`` (mapping or parsing errors) is permanent: the alert is rejected and handed back
  so the runner can dead-letter it;
* any other status (401/403/404, ...) is systemic (credentials, a deleted index), so it is
  treated like an outage: retried, then surfaced as backpressure rather than dropping alerts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detector.models import Alert
from detector.sinks.suppression import update_operation

#: Bumped whenever :func:`index_template` changes, recorded in the template's ``_meta``.
TEMPLATE_VERSION = 2

#: Default write alias of the alerts index.
DEFAULT_INDEX = "detector-alerts"

_STORED = {200, 201, 409}


def bulk_operations(alerts: Sequence[Alert], index: str) -> list[dict[str, Any]]:
    """Bulk lines for ``alerts``: a ``create`` action with ``_id`` = alert id, then the document.

    ``create`` (not ``index``) makes a re-delivered alert a 409 instead of an overwrite, so an
    analyst's later workflow changes on the stored alert are never clobbered. An alert of a
    suppressing rule is an ``update`` of its group's document instead
    (:mod:`detector.sinks.suppression`).
    """
    lines: list[dict[str, Any]] = []
    for alert in alerts:
        if alert.rule.suppression is not None:
            lines += update_operation(alert, index)
            continue
        lines.append({"create": {"_index": index, "_id": alert.id}})
        lines.append(alert.to_document())
    return lines


def transient_status(status: int) -> bool:
    """Whether a whole-request or per-item HTTP status is worth retrying as-is."""
    return status in {408, 429} or status >= 500


@dataclass(slots=True)
class BulkOutcome:
    """What one bulk response means, item by item (alert ids in request order)."""

    created: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: alert id -> reason; send again after a backoff.
    retry: dict[str, str] = field(default_factory=dict)
    #: alert id -> reason; retrying cannot help (dead-letter these).
    rejected: dict[str, str] = field(default_factory=dict)


def interpret_bulk_response(response: Mapping[str, Any], ids: Sequence[str]) -> BulkOutcome:
    """Classify every item of a bulk ``response`` to a request built for ``ids``.

    Items are matched to alerts by position, as the bulk API guarantees; a response with a
    different number of items is malformed and every alert is marked for retry.
    """
    outcome = BulkOutcome()
    items = response.get("items")
    if not isinstance(items, list) or len(items) != len(ids):
        reason = f"malformed bulk response: {len(items) if isinstance(items, list) else 0} items"
        outcome.retry = dict.fromkeys(ids, reason)
        return outcome
    for alert_id, item in zip(ids, items, strict=True):
        result: Mapping[str, Any] = (
            next(iter(item.values()), {}) if isinstance(item, Mapping) else {}
        )
        status = int(result.get("status", 0))
        action = next(iter(item), "") if isinstance(item, Mapping) else ""
        if status == 409 and action == "update":
            # A suppression update lost a race more often than retry_on_conflict allows.
            outcome.retry[alert_id] = f"409 {_error_text(result.get('error'))}"
            continue
        if status in _STORED:
            (outcome.duplicates if status == 409 else outcome.created).append(alert_id)
            continue
        reason = f"{status} {_error_text(result.get('error'))}"
        if status == 400:
            outcome.rejected[alert_id] = reason
        else:
            outcome.retry[alert_id] = reason
    return outcome


def _error_text(error: Any) -> str:
    """``type: reason`` of a bulk item error (which may be a dict or a bare string)."""
    if isinstance(error, Mapping):
        return f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    return str(error or "no error detail")


def _keyword() -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": 1024}


def _text() -> dict[str, Any]:
    return {"type": "text"}


def _date() -> dict[str, Any]:
    return {"type": "date"}


def _obj(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"properties": properties}


#: Objects kept in ``_source`` for the analyst but never indexed: attacker-chosen keys
#: in native records must not be able to grow the mapping.
_STORED_ONLY: dict[str, Any] = {"type": "object", "enabled": False}


def alert_mappings() -> dict[str, Any]:
    """The ECS mapping of :meth:`detector.models.Alert.to_document` (same on both engines).

    ``dynamic: false`` at the root: fields we do not map stay in ``_source`` (visible in
    Kibana) but never create mappings. Correlation group keys are the one dynamic part,
    always mapped as keywords (their names come from rules, not from events).
    """
    return {
        "dynamic": False,
        "dynamic_templates": [
            {
                "group_keys_as_keywords": {
                    "path_match": "kibana.alert.group.key.*",
                    # strings only: a dotted key such as "user.name" also creates objects
                    "match_mapping_type": "string",
                    "mapping": _keyword(),
                }
            }
        ],
        "properties": {
            "@timestamp": _date(),
            "message": _text(),
            "tags": _keyword(),
            "labels": {"type": "object", "dynamic": False},
            "event": _obj(
                kind=_keyword(),
                id=_keyword(),
                severity={"type": "long"},
                created=_date(),
                reference=_keyword(),
                dataset=_keyword(),
                action=_keyword(),
                category=_keyword(),
                outcome=_keyword(),
                provider=_keyword(),
            ),
            "rule": _obj(
                id=_keyword(),
                uuid=_keyword(),
                name=_keyword(),
                description=_text(),
                ruleset=_keyword(),
                category=_keyword(),
                reference=_keyword(),
                author=_keyword(),
            ),
            "threat": _obj(
                framework=_keyword(),
                technique=_obj(id=_keyword(), name=_keyword(), reference=_keyword()),
                tactic=_obj(id=_keyword(), name=_keyword(), reference=_keyword()),
            ),
            "kibana": _obj(
                alert=_obj(
                    uuid=_keyword(),
                    status=_keyword(),
                    workflow_status=_keyword(),
                    severity=_keyword(),
                    risk_score={"type": "float"},
                    reason=_text(),
                    start=_date(),
                    original_time=_date(),
                    rule=_obj(
                        uuid=_keyword(),
                        name=_keyword(),
                        description=_text(),
                        type=_keyword(),
                        tags=_keyword(),
                        false_positives=_text(),
                        references=_keyword(),
                    ),
                    group={"type": "object", "dynamic": True, "properties": {}},
                    window=_obj(start=_date(), end=_date()),
                    event_count={"type": "long"},
                    original_events=_STORED_ONLY,
                    suppression=_obj(
                        terms=_obj(field=_keyword(), value=_keyword()),
                        start=_date(),
                        end=_date(),
                        docs_count={"type": "long"},
                    ),
                )
            ),
            "detector": _obj(raw_events=_STORED_ONLY, suppression=_STORED_ONLY),
            # ECS fields lifted from the first source event: the ones analysts filter on.
            "source": _obj(
                ip={"type": "ip"},
                address=_keyword(),
                port={"type": "long"},
                domain=_keyword(),
                geo=_obj(country_iso_code=_keyword(), city_name=_keyword()),
                **{"as": _obj(number={"type": "long"}, organization=_obj(name=_keyword()))},
            ),
            "destination": _obj(ip={"type": "ip"}, address=_keyword(), domain=_keyword()),
            "user": _obj(
                name=_keyword(),
                id=_keyword(),
                domain=_keyword(),
                email=_keyword(),
                roles=_keyword(),
            ),
            "user_agent": _obj(original=_keyword()),
            "cloud": _obj(
                provider=_keyword(),
                region=_keyword(),
                account=_obj(id=_keyword(), name=_keyword()),
                service=_obj(name=_keyword()),
            ),
            "related": _obj(ip={"type": "ip"}, user=_keyword(), hosts=_keyword()),
            "host": _obj(name=_keyword()),
            "container": _obj(
                image=_obj(name=_keyword(), tag=_keyword(), hash=_obj(all=_keyword()))
            ),
            "url": _obj(original=_keyword(), path=_keyword()),
            "http": _obj(
                request=_obj(method=_keyword()),
                response=_obj(status_code={"type": "long"}),
            ),
            "error": _obj(code=_keyword(), message=_text()),
            "service": _obj(name=_keyword()),
            "organization": _obj(name=_keyword()),
            "repository": _obj(name=_keyword()),
        },
    }


def index_template(index: str, *, shards: int = 1, replicas: int | None = None) -> dict[str, Any]:
    """The composable index template (``PUT _index_template/<index>``) for ``<index>-*``.

    ``index.mapping.ignore_malformed`` keeps one odd value (CloudTrail's ``sourceIPAddress``
    can be a service name, not an IP) from rejecting a whole alert: the field is just not
    indexed. Structural conflicts (a string where an object is mapped) still fail with 400.
    """
    settings: dict[str, Any] = {
        "index.number_of_shards": shards,
        "index.mapping.ignore_malformed": True,
        "index.mapping.total_fields.limit": 2000,
    }
    if replicas is not None:
        settings["index.number_of_replicas"] = replicas
    return {
        "index_patterns": [f"{index}-*"],
        "priority": 200,
        "template": {"settings": settings, "mappings": alert_mappings()},
        "_meta": {"managed_by": "detector", "template_version": TEMPLATE_VERSION},
    }


def first_index(index: str) -> str:
    """The concrete index created behind the write alias ``index``."""
    return f"{index}-000001"


def first_index_body(index: str) -> dict[str, Any]:
    """``PUT <first_index>`` body: the write alias; settings and mappings come from the template."""
    return {"aliases": {index: {"is_write_index": True}}}
