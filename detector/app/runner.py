"""The streaming runner: poll a batch, detect, make alerts durable, then commit.

Commit order (at-least-once without loss): dead letters and alerts of a batch are durable
before its offsets are committed. Sinks are idempotent (deterministic alert ids), so a
crash between write and commit only re-writes the same alerts. When a sink fails, the
runner pauses every partition and keeps polling (heartbeats, no rebalance) while it
retries with backoff: an outage is backpressure, not loss.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
import structlog

from detector.app.health import HealthState
from detector.app.metrics import ALERTS, BATCH_SECONDS, DEAD_LETTERS, RECORDS, SINK_RETRIES
from detector.app.pipeline import BatchResult, Pipeline
from detector.errors import AlertRejectedError, SinkError
from detector.models import Alert, DeadLetter, Origin, Sink
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sources.kafka import KafkaSource

log = structlog.get_logger(__name__)


class StalledError(RuntimeError):
    """The pipeline made no progress for too long; the process exits so it is restarted."""


class Runner:
    """Wires a Kafka source, the pipeline, the alert sinks and the dead-letter topic."""

    def __init__(
        self,
        source: KafkaSource,
        pipeline: Pipeline,
        sinks: Sequence[Sink],
        deadletters: KafkaDeadLetterSink,
        health: HealthState | None = None,
        *,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        self.source = source
        self.pipeline = pipeline
        self.sinks = list(sinks)
        self.deadletters = deadletters
        self.health = health or HealthState()
        self.max_backoff_seconds = max_backoff_seconds
        self.batches = 0

    def stop(self) -> None:
        """Drain: finish and commit the current batch, then return from :meth:`run`."""
        self.source.stop()

    async def run(self) -> None:
        """Consume until stopped; a stalled loop raises :class:`StalledError`."""
        self.health.ready = True
        async with asyncio.TaskGroup() as tasks:
            watchdog = tasks.create_task(self._watchdog())
            try:
                await self._consume()
            finally:
                watchdog.cancel()
                self.health.ready = False

    async def _consume(self) -> None:
        async for batch in self.source.batches():
            started = time.perf_counter()
            self.health.progress()
            if not batch:
                continue
            for record in batch:
                RECORDS.labels(record.origin.topic or "").inc()
            result = self.pipeline.process(batch)
            await self._deliver(result)
            await self.source.commit()
            self.batches += 1
            BATCH_SECONDS.observe(time.perf_counter() - started)
            log.info(
                "batch_committed",
                records=len(batch),
                events=result.events,
                alerts=len(result.alerts),
                dead_letters=len(result.dead_letters),
            )

    async def _deliver(self, result: BatchResult) -> None:
        """Write dead letters, then alerts to every sink, retrying while partitions are paused."""
        await self._with_backpressure("deadletter", self.deadletters.write, result.dead_letters)
        for letter in result.dead_letters:
            DEAD_LETTERS.labels(letter.stage, letter.reason).inc()
        for sink in self.sinks:
            try:
                await self._with_backpressure(type(sink).__name__, sink.write, result.alerts)
            except AlertRejectedError as exc:
                # Refused for good (e.g. a mapping conflict): keep the evidence, move on.
                by_id = {alert.id: alert for alert in result.alerts}
                letters = [
                    _rejected_letter(by_id[alert_id], reason)
                    for alert_id, reason in exc.rejected.items()
                    if alert_id in by_id
                ]
                await self._with_backpressure("deadletter", self.deadletters.write, letters)
        for alert in result.alerts:
            ALERTS.labels(alert.rule.id, alert.severity).inc()

    async def _with_backpressure(
        self,
        name: str,
        write: Callable[[Sequence[Any]], Awaitable[None]],
        items: Sequence[Alert] | Sequence[DeadLetter],
    ) -> None:
        if not items:
            return
        attempt = 0
        paused = False
        while True:
            try:
                await write(items)
                break
            except SinkError as exc:
                attempt += 1
                SINK_RETRIES.labels(name).inc()
                delay = min(self.max_backoff_seconds, 0.2 * 2**attempt) * random.uniform(0.5, 1)
                log.warning("sink_unavailable", sink=name, attempt=attempt, error=str(exc))
                if not paused:
                    self.source.pause()
                    paused = True
                await self.source.idle_poll(int(delay * 1000))
                self.health.progress()
        if paused:
            self.source.resume()
            log.info("sink_recovered", sink=name, attempts=attempt)

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(self.health.stall_after_seconds / 4)
            if not self.health.healthy:
                log.error("pipeline_stalled", stall_after=self.health.stall_after_seconds)
                raise StalledError(
                    f"no poll completed in {self.health.stall_after_seconds:.0f}s; exiting so "
                    "the consumer is restarted"
                )


def _rejected_letter(alert: Alert, reason: str) -> DeadLetter:
    """A dead letter holding an alert document that a sink refused for good."""
    return DeadLetter(
        stage="sink",
        reason="alert_rejected",
        detail=reason,
        origin=Origin(),
        value=orjson.dumps(alert.to_document()),
    )
