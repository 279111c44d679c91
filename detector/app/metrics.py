"""Prometheus metrics of a detector process (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RECORDS = Counter("detector_records_total", "Raw records consumed.", ["topic"], registry=REGISTRY)
EVENTS = Counter("detector_events_total", "Normalized events.", ["family"], registry=REGISTRY)
MATCHES = Counter(
    "detector_rule_matches_total", "Single-event rule matches.", ["rule_id"], registry=REGISTRY
)
ALERTS = Counter(
    "detector_alerts_total", "Alerts made durable.", ["rule_id", "severity"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "detector_dead_letters_total",
    "Records sent to the dead-letter path.",
    ["stage", "reason"],
    registry=REGISTRY,
)
LATE_EVENTS = Counter(
    "detector_late_events_total", "Events older than the watermark.", registry=REGISTRY
)
BATCH_SECONDS = Histogram(
    "detector_batch_seconds", "Time from poll to commit of one batch.", registry=REGISTRY
)
EVENT_LAG_SECONDS = Histogram(
    "detector_event_lag_seconds",
    "Wall-clock time minus event time when an event is evaluated.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
    registry=REGISTRY,
)
STATE_GROUPS = Gauge("detector_state_groups", "Active correlation groups.", registry=REGISTRY)
SINK_RETRIES = Counter(
    "detector_sink_retries_total",
    "Sink write attempts that failed and were retried.",
    ["sink"],
    registry=REGISTRY,
)
NOTIFY_FAILURES = Counter(
    "detector_notification_failures_total",
    "Notification batches that failed after retries and went to the dead-letter topic.",
    ["sink"],
    registry=REGISTRY,
)
