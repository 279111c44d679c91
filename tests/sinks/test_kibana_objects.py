"""Kibana saved objects: consistent references, fields that exist, and the import request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from http_support import Reply, ScriptedServer
from typer.testing import CliRunner

from detector.cli.main import app
from detector.errors import SinkError
from detector.sinks.documents import alert_mappings
from detector.sinks.kibana import import_saved_objects, saved_objects, to_ndjson

ROOT = Path(__file__).resolve().parents[2]


def _mapped_fields(props: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, spec in props.items():
        path = f"{prefix}{name}"
        out.add(path)
        out |= _mapped_fields(spec.get("properties", {}), f"{path}.")
    return out


def test_every_reference_resolves_and_every_column_is_mapped() -> None:
    """Each reference names an object in the bundle; searches use mapped alert fields."""
    objects = saved_objects("my-alerts")
    ids = {(o["type"], o["id"]) for o in objects}
    mapped = _mapped_fields(alert_mappings()["properties"])
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in ids, (obj["id"], ref)
        if obj["type"] == "search":
            for column in obj["attributes"]["columns"]:
                assert column in mapped, column
            source = json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            assert source["indexRefName"] in {r["name"] for r in obj["references"]}
    data_view = next(o for o in objects if o["type"] == "index-pattern")
    assert data_view["attributes"]["title"] == "my-alerts*"


def test_dashboard_panels_point_at_their_references() -> None:
    """Every dashboard panel's ``panelRefName`` has a reference of the panel's type."""
    dashboard = next(o for o in saved_objects() if o["type"] == "dashboard")
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r for r in dashboard["references"]}
    assert len(panels) == 6
    for panel in panels:
        assert refs[panel["panelRefName"]]["type"] == panel["type"]
    visualizations = [o for o in saved_objects() if o["type"] == "visualization"]
    mapped = _mapped_fields(alert_mappings()["properties"])
    for vis in visualizations:
        state = json.loads(vis["attributes"]["visState"])
        fields = [a["params"]["field"] for a in state["aggs"] if "field" in a["params"]]
        assert fields and all(f in mapped for f in fields)


def test_committed_ndjson_matches_the_code() -> None:
    """deploy/kibana holds exactly what ``detector kibana export`` prints."""
    committed = (ROOT / "deploy/kibana/detector-saved-objects.ndjson").read_text()
    assert committed == to_ndjson(saved_objects())
    result = CliRunner().invoke(app, ["kibana", "export"])
    assert result.exit_code == 0 and result.output == committed


async def test_import_posts_multipart_ndjson_with_xsrf_header() -> None:
    """The import is a multipart upload to the space's _import API with overwrite and kbn-xsrf."""
    with ScriptedServer([Reply(200, {"success": True, "successCount": 8})]).running() as kibana:
        await import_saved_objects(kibana.url, saved_objects(), space="soc", api_key="abc")
    (request,) = kibana.requests
    assert request.method == "POST"
    assert request.path == "/s/soc/api/saved_objects/_import?overwrite=true"
    assert request.headers["kbn-xsrf"] == "true"
    assert request.headers["authorization"] == "ApiKey abc"
    assert b'filename="detector.ndjson"' in request.body
    assert to_ndjson(saved_objects()).encode() in request.body


async def test_partial_import_is_an_error_naming_the_objects() -> None:
    """Kibana's per-object errors surface in the message instead of a silent success."""
    partial = Reply(
        200,
        {
            "success": False,
            "errors": [{"type": "dashboard", "id": "x", "error": {"type": "conflict"}}],
        },
    )
    with (
        ScriptedServer([partial]).running() as kibana,
        pytest.raises(SinkError, match="dashboard/x: conflict"),
    ):
        await import_saved_objects(kibana.url, saved_objects())
