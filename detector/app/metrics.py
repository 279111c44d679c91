"""Prometheus metrics of a detector process (one registry per process): every definition.

The stages update them through the small helpers below, so what a metric means is written
once, here. ``deploy/grafana/`` and ``deploy/prometheus/`` query exactly these names (a test
checks it).
"""

from __future__ import annotations

import contextlib
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

#: A bucket bound as prometheus_client writes it in ``le`` (``1.0``, ``+Inf``).
_le: Callable[[float], str] = floatToGoString


class BatchHistogram(Collector):
    """A histogram without labels that takes the observations of a batch at once.

    prometheus_client's :class:`~prometheus_client.Histogram` takes two locks and walks
    its buckets for every observation: as much as the rest of the detect stage's
    per-event bookkeeping. This one sorts a batch's values into buckets with ``bisect``
    and takes its lock once per batch. It exposes the same samples (``_bucket`` with
    the same ``le`` labels, ``_sum``, ``_count``, ``_created``).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = sorted(float(b) for b in buckets)
        #: per bucket (the last one +Inf): observations above the bound before it
        self._counts = [0] * (len(self._bounds) + 1)
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        """Record every value of ``values``, each as one observation."""
        bounds = self._bounds
        counts = [0] * len(self._counts)
        total = 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # a value equal to a bound is in it
            total += value
        with self._lock:
            self._counts = [a + b for a, b in zip(self._counts, counts, strict=True)]
            self._sum += total

    def describe(self) -> Iterator[Metric]:
        """The family without samples (for the registry's name check)."""
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        """The cumulative buckets, sum, count and creation time."""
        with self._lock:
            counts, total = self._counts, self._sum
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip([*self._bounds, float("inf")], counts, strict=True):
            cumulative += count
            buckets.append((_le(bound), cumulative))
        family = HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=total
        )
        family.add_sample(f"{self.name}_created", {}, self._created)
        yield family


REGISTRY = CollectorRegistry(auto_describe=True)

# -- detect stage ------------------------------------------------------------------------

RECORDS = Counter("detector_records_total", "Raw records consumed.", ["topic"], registry=REGISTRY)
EVENTS = Counter(
    "detector_events_total", "Normalized events, by source family.", ["family"], registry=REGISTRY
)
MATCHES = Counter(
    "detector_rule_matches_total",
    "Single-event rule matches (before alerting, building blocks included).",
    ["rule_id"],
    registry=REGISTRY,
)
EVENT_LAG_SECONDS = BatchHistogram(
    "detector_event_lag_seconds",
    "Wall-clock time minus event time when an event is evaluated.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 86400),
    registry=REGISTRY,
)

# -- both stages -------------------------------------------------------------------------

ALERTS = Counter(
    "detector_alerts_total", "Alerts made durable.", ["rule_id", "severity"], registry=REGISTRY
)
DEAD_LETTERS = Counter(
    "detector_dead_letters_total",
    "Records sent to the dead-letter path.",
    ["stage", "reason"],
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "detector_batch_seconds",
    "Time from poll to commit (detect) or to durable alerts (correlate) of one batch.",
    ["stage"],
    registry=REGISTRY,
)
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
CONSUMER_LAG_RECORDS = Gauge(
    "detector_consumer_lag_records",
    "Records between the consumer's position and the end of the partition.",
    ["stage", "topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_LAG_SECONDS = Gauge(
    "detector_consumer_lag_seconds",
    "Age of the last record consumed from the partition while records remain behind it "
    "(0 when caught up).",
    ["stage", "topic", "partition"],
    registry=REGISTRY,
)

# -- correlate stage ---------------------------------------------------------------------

LATE_EVENTS = Counter(
    "detector_late_events_total",
    "Matches that arrived after a newer one within the allowed lateness (put back in order).",
    registry=REGISTRY,
)
TOO_LATE_EVENTS = Counter(
    "detector_too_late_events_total",
    "Matches older than every open window of their rule (not counted into any window).",
    ["rule_id"],
    registry=REGISTRY,
)
STATE_GROUPS = Gauge("detector_state_groups", "Active correlation groups.", registry=REGISTRY)
STATE_EVICTIONS = Counter(
    "detector_state_evictions_total",
    "Groups dropped because a rule reached its cap of active groups (partial windows lost).",
    ["rule_id"],
    registry=REGISTRY,
)
DUPLICATE_MATCHES = Counter(
    "detector_duplicate_matches_total",
    "Routed matches dropped because the state already holds them (detect-stage re-sends).",
    registry=REGISTRY,
)
STATE_RESTORES = Counter(
    "detector_state_restores_total",
    "Partitions whose state was restored from the changelog, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
CHECKPOINT_BYTES = Histogram(
    "detector_state_checkpoint_bytes",
    "Bytes a checkpoint writes for one partition: its changed keys and its meta record.",
    buckets=(1e3, 1e4, 1e5, 1e6, 4e6, 16e6, 32e6),
    registry=REGISTRY,
)


def observe_events(families: Mapping[str, int], lags: Iterable[float]) -> None:
    """A batch of normalized events was evaluated: ``families`` counts them by family,
    ``lags`` holds each one's wall-clock time minus its event time (negative: 0).

    Once per batch rather than per event: a labelled increment or a histogram
    observation costs about a microsecond, as much as the rest of the per-event
    bookkeeping of the detect stage.
    """
    for family, count in families.items():
        EVENTS.labels(family).inc(count)
    EVENT_LAG_SECONDS.observe_many(max(0.0, lag) for lag in lags)


def count_matches(rules: Mapping[str, int]) -> None:
    """Single-event rule matches of a batch, by rule id."""
    for rule_id, count in rules.items():
        MATCHES.labels(rule_id).inc(count)


class LagSource(Protocol):
    """What :class:`ConsumerLag` reads of a Kafka consumer (aiokafka's, or the source's)."""

    def assignment(self) -> set[TopicPartition]:
        """Partitions assigned to this member."""
        ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """End offset of ``partition`` as of the last fetch, None before one."""
        ...

    async def position(self, partition: TopicPartition) -> int:
        """Offset of the next record this member will be given from ``partition``."""
        ...


class ConsumerLag:
    """Consumer lag of one stage per topic and partition, in records and in seconds.

    Records: the partition's high watermark minus this member's position. Seconds: how old
    the last record consumed from the partition is while records remain behind it (an
    upper bound of how long the next one has waited), 0 when caught up. Partitions this
    member no longer owns stop being reported.
    """

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self._timestamps: dict[tuple[str, int], float] = {}
        self._reported: set[tuple[str, int]] = set()

    def consumed(self, newest: Mapping[tuple[str, int], int | None]) -> None:
        """Remember the broker timestamp (ms) of the newest record consumed per
        ``(topic, partition)``; None or 0: the broker gave none."""
        for key, stamp in newest.items():
            if stamp:
                self._timestamps[key] = stamp / 1000

    def polled(self, polled: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """Like :meth:`consumed` for what aiokafka's ``getmany`` returned."""
        for tp, messages in polled.items():
            if messages and messages[-1].timestamp:
                self._timestamps[(tp.topic, tp.partition)] = messages[-1].timestamp / 1000

    async def update(self, consumer: LagSource) -> None:
        """Set the gauges for every partition assigned to ``consumer``."""
        now = time.time()
        seen: set[tuple[str, int]] = set()
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                behind = max(0, high - await consumer.position(tp))
            except IllegalStateError:  # revoked by a rebalance meanwhile
                continue
            key = (tp.topic, tp.partition)
            seen.add(key)
            stamp = self._timestamps.get(key)
            age = max(0.0, now - stamp) if behind and stamp is not None else 0.0
            labels = (self.stage, tp.topic, str(tp.partition))
            CONSUMER_LAG_RECORDS.labels(*labels).set(behind)
            CONSUMER_LAG_SECONDS.labels(*labels).set(age)
        for topic, partition in self._reported - seen:
            for gauge in (CONSUMER_LAG_RECORDS, CONSUMER_LAG_SECONDS):
                with contextlib.suppress(KeyError):  # never set for this partition
                    gauge.remove(self.stage, topic, str(partition))
        self._reported = seen
