"""The Grafana dashboard and the Prometheus alerting rules query only metrics the service
exposes, every exposed metric is on the dashboard, and the alerts operators need exist.

PromQL is parsed with ``promql-parser`` (the expression's syntax tree), so a misspelt
metric, a suffix that does not exist (``_total`` on a gauge) or a broken expression fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

import detector.app.service  # noqa: F401  (imports every module that registers a metric)
from detector.app.metrics import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "detector-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "detector-alerts.yml"

#: Sample name suffixes Prometheus sees per metric type.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exposed() -> dict[str, str]:
    """Every sample name a detector process exposes -> its metric family."""
    names: dict[str, str] = {}
    for family in REGISTRY.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = family.name
    return names


def _children(node: Any) -> Iterator[Any]:
    for attribute in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attribute, None)
        if child is not None:
            yield child
    yield from getattr(node, "args", None) or ()


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (raises ValueError when it does not parse)."""
    names: set[str] = set()
    stack = [promql_parser.parse(expr)]
    while stack:
        node = stack.pop()
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        stack.extend(_children(node))
    return names


def dashboard_queries() -> list[str]:
    """Every query of the dashboard's panels."""
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for panel in data["panels"] for t in panel["targets"]]


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the Prometheus rule file."""
    data = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_every_query_names_only_exposed_metrics() -> None:
    """Each dashboard and alert expression parses and selects metrics /metrics serves."""
    known = exposed()
    unknown = {
        (expr, name)
        for expr in [*dashboard_queries(), *(r["expr"] for r in alert_rules())]
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, sorted(unknown)


def test_dashboard_shows_every_exposed_metric() -> None:
    """No metric family is left off the dashboard."""
    known = exposed()
    shown = {known[n] for expr in dashboard_queries() for n in metric_names(expr) if n in known}
    assert shown == set(known.values())


def test_alerts_cover_lag_dead_letters_sinks_and_stalls() -> None:
    """The alerts operators need exist, each with a severity, a summary and a duration
    where a single scrape must not page."""
    rules = {r["alert"]: r for r in alert_rules()}
    needed = {
        "DetectorConsumerLagGrowing": "detector_consumer_lag_records",
        "DetectorDeadLetterRate": "detector_dead_letters_total",
        "DetectorSinkRetrying": "detector_sink_retries_total",
        "DetectorStageStalled": "detector_consumer_lag_records",
    }
    for alert, metric in needed.items():
        assert metric in metric_names(rules[alert]["expr"]), alert
        assert rules[alert].get("for"), alert
    for alert, rule in rules.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), alert
        assert rule["annotations"]["summary"], alert


def test_checks_can_fail() -> None:
    """A misspelt metric or a counter suffix on a gauge is unknown; nonsense does not parse."""
    known = exposed()
    assert "detector_record_total" not in known
    assert "detector_state_groups_total" not in known
    assert metric_names("rate(detector_record_total[5m]) > 0") == {"detector_record_total"}
    with pytest.raises(ValueError):
        metric_names("sum(rate(detector_records_total[5m])")
