"""The detect stage counts its per-event metrics once per batch, and they stay exact."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from detector.app.metrics import REGISTRY, BatchHistogram
from detector.app.service import build_detect_pipeline, load_ruleset
from detector.app.settings import load_settings
from detector.models import Origin, RawRecord

ROOT = Path(__file__).resolve().parents[2]
BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86400)


def _exposition(registry: CollectorRegistry) -> list[str]:
    """The text exposition without the ``_created`` values (creation times differ)."""
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if "_created " not in line or line.startswith("#")
    ]


def test_batch_histogram_exposes_what_prometheus_histogram_does() -> None:
    """Values on, between, below and above the bounds, observed in two batches, give the
    same buckets, sum and count as prometheus_client's Histogram fed one by one."""
    values = [0.0, 0.5, 0.75, 1.0, 59.9, 60.0, 61.0, 86400.0, 86400.5, 1e9, 3.25]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("lag_seconds", "Lag.", BUCKETS, ours)
    reference = Histogram("lag_seconds", "Lag.", buckets=BUCKETS, registry=theirs)
    batched.observe_many(values[:4])
    batched.observe_many(iter(values[4:]))
    for value in values:
        reference.observe(value)
    assert _exposition(ours) == _exposition(theirs)
    assert ours.get_sample_value("lag_seconds_created") is not None


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_detect_pipeline_counts_every_event_and_match_of_a_batch() -> None:
    """A batch of records of which some match a rule: the events counter, the event-lag
    histogram's count and the per-rule match counter move by exactly the batch's events
    and matches."""
    # the default rule pack with the example placeholders
    settings = load_settings(ROOT / "examples" / "detector.yaml")
    pipeline = build_detect_pipeline(settings, load_ruleset(settings))
    scenario = ROOT / "examples" / "scenario" / "logs" / "cloudtrail.jsonl"
    lines = scenario.read_bytes().splitlines()[:300]
    now_ms = int(time.time() * 1000)
    records = [
        RawRecord(line, Origin("metrics", 0, n), timestamp_ms=now_ms)
        for n, line in enumerate(lines)
    ]
    events_before = _sample("detector_events_total", {"family": "cloudtrail"})
    lag_before = _sample("detector_event_lag_seconds_count")
    # every match of the batch, counted without the pipeline (the engine is stateless)
    expected: dict[str, int] = {}
    for event in pipeline.ingest(records)[0]:
        for match in pipeline.engine.evaluate(event):
            expected[match.rule.id] = expected.get(match.rule.id, 0) + 1
    assert expected, "the scenario's first records match no rule: pick others"
    matches_before = {
        rule: _sample("detector_rule_matches_total", {"rule_id": rule}) for rule in expected
    }
    result = pipeline.process(records)
    assert result.events == len(lines)
    assert _sample("detector_events_total", {"family": "cloudtrail"}) - events_before == len(lines)
    assert _sample("detector_event_lag_seconds_count") - lag_before == len(lines)
    for rule, count in expected.items():
        moved = _sample("detector_rule_matches_total", {"rule_id": rule}) - matches_before[rule]
        assert moved == count, rule
