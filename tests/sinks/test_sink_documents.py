"""The shared document, template and bulk-response rules (no I/O)."""

from __future__ import annotations

from sink_support import make_alert

from detector.sinks.documents import (
    alert_mappings,
    bulk_operations,
    index_template,
    interpret_bulk_response,
    transient_status,
)


def test_bulk_operations_are_create_actions_keyed_by_alert_id() -> None:
    """Each alert becomes a ``create`` action on the alias with ``_id`` = alert id, then its doc."""
    alerts = [make_alert(1), make_alert(2)]
    ops = bulk_operations(alerts, "detector-alerts")
    assert ops[0] == {"create": {"_index": "detector-alerts", "_id": alerts[0].id}}
    assert ops[2] == {"create": {"_index": "detector-alerts", "_id": alerts[1].id}}
    assert ops[1]["event"]["id"] == alerts[0].id
    assert ops[3]["kibana"]["alert"]["uuid"] == alerts[1].id
    assert len(ops) == 4


def test_bulk_response_classification() -> None:
    """201 and 409 are stored, 429/5xx retried, 400 rejected, 403 retried (systemic)."""
    ids = ["a", "b", "c", "d", "e", "f"]
    response = {
        "errors": True,
        "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
            {"create": {"status": 503, "error": "unavailable"}},
            {
                "create": {
                    "status": 400,
                    "error": {"type": "document_parsing_exception", "reason": "x"},
                }
            },
            {"create": {"status": 403, "error": {"type": "security_exception"}}},
        ],
    }
    outcome = interpret_bulk_response(response, ids)
    assert outcome.created == ["a"]
    assert outcome.duplicates == ["b"]
    assert sorted(outcome.retry) == ["c", "d", "f"]
    assert list(outcome.rejected) == ["e"]
    assert "document_parsing_exception" in outcome.rejected["e"]


def test_malformed_bulk_response_retries_everything() -> None:
    """A response whose item count does not match the request is never read as success."""
    outcome = interpret_bulk_response({"items": [{"create": {"status": 201}}]}, ["a", "b"])
    assert outcome.created == []
    assert sorted(outcome.retry) == ["a", "b"]


def test_transient_statuses() -> None:
    """Only timeouts, throttling and server errors are transient."""
    assert [
        s for s in (200, 400, 401, 403, 404, 408, 409, 413, 429, 500, 503) if transient_status(s)
    ] == [
        408,
        429,
        500,
        503,
    ]


def test_template_keeps_raw_events_out_of_the_index() -> None:
    """Native and original events are stored-only objects; the root mapping is not dynamic."""
    mappings = alert_mappings()
    assert mappings["dynamic"] is False
    props = mappings["properties"]
    assert props["detector"]["properties"]["raw_events"] == {"type": "object", "enabled": False}
    original = props["kibana"]["properties"]["alert"]["properties"]["original_events"]
    assert original == {"type": "object", "enabled": False}
    assert props["source"]["properties"]["ip"] == {"type": "ip"}
    assert props["@timestamp"] == {"type": "date"}
    template = index_template("detector-alerts")
    assert template["index_patterns"] == ["detector-alerts-*"]


def test_every_mapped_document_field_exists_in_the_template() -> None:
    """The fields Alert.to_document always writes (outside lifted ECS fields) are all mapped."""
    doc = bulk_operations([make_alert(3)], "i")[1]
    props = alert_mappings()["properties"]

    def walk(value: dict[str, object], mapping: dict[str, object], path: str) -> list[str]:
        missing: list[str] = []
        for key, sub in value.items():
            field = mapping.get(key)
            if not isinstance(field, dict):
                missing.append(f"{path}{key}")
            elif isinstance(sub, dict) and field.get("enabled", True) and "properties" in field:
                missing += walk(sub, field["properties"], f"{path}{key}.")
        return missing

    always = {
        k: doc[k] for k in ("@timestamp", "event", "rule", "tags", "threat", "kibana", "detector")
    }
    assert walk(always, props, "") == []
