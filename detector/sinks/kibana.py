"""Kibana saved objects for analysts: a data view, saved searches and a dashboard.

Built in code so they always match the configured alert index and the alert mapping
(:mod:`detector.sinks.documents`). ``import_saved_objects`` loads them with Kibana's
saved-objects import API (overwrite, so re-running updates them in place).
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from detector.errors import SinkError
from detector.sinks.documents import DEFAULT_INDEX

DATA_VIEW_ID = "detector-alerts-data-view"
COLUMNS = [
    "kibana.alert.severity",
    "rule.name",
    "user.name",
    "source.ip",
    "event.dataset",
    "kibana.alert.reason",
]
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def _search(object_id: str, title: str, description: str, kuery: str) -> dict[str, Any]:
    source = {
        "query": {"query": kuery, "language": "kuery"},
        "filter": [],
        "indexRefName": _INDEX_REF,
    }
    return {
        "type": "search",
        "id": object_id,
        "attributes": {
            "title": title,
            "description": description,
            "columns": COLUMNS,
            "sort": [["@timestamp", "desc"]],
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
        },
        "references": [{"name": _INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
    }


def _table(object_id: str, title: str, field: str) -> dict[str, Any]:
    """A legacy data-table visualization: alert count per value of ``field``."""
    vis_state = {
        "title": title,
        "type": "table",
        "params": {
            "perPage": 10,
            "showPartialRows": False,
            "showMetricsAtAllLevels": False,
            "showTotal": False,
            "totalFunc": "sum",
            "percentageCol": "",
        },
        "aggs": [
            {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}},
            {
                "id": "2",
                "enabled": True,
                "type": "terms",
                "schema": "bucket",
                "params": {"field": field, "size": 10, "order": "desc", "orderBy": "1"},
            },
        ],
    }
    source = {"query": {"query": "", "language": "kuery"}, "filter": [], "indexRefName": _INDEX_REF}
    return {
        "type": "visualization",
        "id": object_id,
        "attributes": {
            "title": title,
            "description": "",
            "visState": json.dumps(vis_state),
            "uiStateJSON": "{}",
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
        },
        "references": [{"name": _INDEX_REF, "type": "index-pattern", "id": DATA_VIEW_ID}],
    }


def saved_objects(index: str = DEFAULT_INDEX) -> list[dict[str, Any]]:
    """The data view over ``<index>*``, saved searches, visualizations and the dashboard."""
    searches = [
        _search(
            "detector-open-alerts",
            "detector: open alerts",
            "Alerts nobody has acknowledged yet, newest first.",
            "kibana.alert.workflow_status : open",
        ),
        _search(
            "detector-high-alerts",
            "detector: high and critical alerts",
            "What to triage first.",
            "kibana.alert.severity : (high or critical)",
        ),
        _search(
            "detector-correlation-alerts",
            "detector: correlation and first-seen alerts",
            "Alerts over several events; kibana.alert.original_events holds the evidence.",
            "not kibana.alert.rule.type : sigma",
        ),
    ]
    tables = [
        _table("detector-top-rules", "detector: alerts by rule", "rule.name"),
        _table("detector-top-users", "detector: alerts by user", "user.name"),
        _table("detector-top-sources", "detector: alerts by source dataset", "event.dataset"),
    ]
    panels: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    layout = [
        (0, 0, 16, 12),
        (16, 0, 16, 12),
        (32, 0, 16, 12),
        (0, 12, 48, 20),
        (0, 32, 48, 15),
        (0, 47, 48, 15),
    ]
    for number, (obj, (x, y, w, h)) in enumerate(
        zip([*tables, *searches], layout, strict=True), start=1
    ):
        ref = f"panel_{number}"
        panels.append(
            {
                "panelIndex": str(number),
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": str(number)},
                "embeddableConfig": {},
                "panelRefName": ref,
                "type": obj["type"],
            }
        )
        references.append({"name": ref, "type": obj["type"], "id": obj["id"]})
    dashboard = {
        "type": "dashboard",
        "id": "detector-alerts-dashboard",
        "attributes": {
            "title": "detector: CI/CD and registry alerts",
            "description": "Alerts from detector: top rules, users and sources, then the queues.",
            "panelsJSON": json.dumps(panels),
            "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "kibanaSavedObjectMeta": {
                "searchSourceJSON": json.dumps(
                    {"query": {"query": "", "language": "kuery"}, "filter": []}
                )
            },
        },
        "references": references,
    }
    data_view = {
        "type": "index-pattern",
        "id": DATA_VIEW_ID,
        "attributes": {
            "title": f"{index}*",
            "name": "detector alerts",
            "timeFieldName": "@timestamp",
        },
        "references": [],
    }
    return [data_view, *searches, *tables, dashboard]


def to_ndjson(objects: list[dict[str, Any]]) -> str:
    """Objects as the NDJSON Kibana's import API and UI accept."""
    return "".join(json.dumps(obj, sort_keys=True) + "\n" for obj in objects)


async def import_saved_objects(
    kibana_url: str,
    objects: list[dict[str, Any]],
    *,
    space: str | None = None,
    api_key: str | None = None,
    basic_auth: tuple[str, str] | None = None,
    request_timeout: float = 30.0,
) -> dict[str, Any]:
    """Import (overwrite) ``objects`` into Kibana; returns Kibana's answer.

    Raises :class:`SinkError` with Kibana's message when the import is refused or an
    object fails (for example a wrong space or missing privileges).
    """
    prefix = f"/s/{space}" if space else ""
    headers = {"kbn-xsrf": "true"}
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    files = {"file": ("detector.ndjson", to_ndjson(objects).encode(), "application/ndjson")}
    async with httpx.AsyncClient(
        base_url=kibana_url, timeout=request_timeout, auth=basic_auth
    ) as client:
        try:
            response = await client.post(
                f"{prefix}/api/saved_objects/_import",
                params={"overwrite": "true"},
                headers=headers,
                files=files,
            )
        except httpx.HTTPError as exc:
            raise SinkError(f"cannot reach Kibana at {kibana_url}: {exc}") from exc
    if response.status_code != 200:
        raise SinkError(
            f"Kibana refused the import ({response.status_code}): {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    if not body.get("success", False):
        errors = "; ".join(
            f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type')}"
            for e in body.get("errors", [])
        )
        raise SinkError(f"Kibana imported only part of the objects: {errors}")
    return body
