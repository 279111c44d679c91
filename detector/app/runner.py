"""The detect stage runner: poll a batch, detect, make its outputs durable, then commit.

Commit order (at-least-once without loss): dead letters, alerts and, in the two-stage
runtime, the routed matches and watermark heartbeats of a batch are acknowledged before
its offsets are committed. Sinks are idempotent (deterministic alert ids) and the
correlate stage drops re-sent matches, so a crash between write and commit only
re-writes the same outputs. When a sink fails, the runner pauses every partition and
keeps polling (heartbeats, no rebalance) while it retries with backoff: an outage is
backpressure, not loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import Protocol

import orjson
import structlog
from aiokafka.errors import CommitFailedError, IllegalStateError

from detector.app.health import HealthState
from detector.app.metrics import (
    ALERTS,
    BATCH_SECONDS,
    DEAD_LETTERS,
    NOTIFY_FAILURES,
    RECORDS,
    SINK_RETRIES,
    ConsumerLag,
)
from detector.app.pipeline import BatchResult
from detector.app.progress import Progress, SourceTracker
from detector.errors import AlertRejectedError, DeliveryAbandonedError, SinkError, UnavailableError
from detector.models import Alert, DeadLetter, Origin, RawRecord, Sink
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sinks.matches import KafkaMatchSink
from detector.sinks.notify.notifier import NotificationSink
from detector.sinks.retry import backoff_delay
from detector.sources.kafka import KafkaSource, SourceBatch

log = structlog.get_logger(__name__)


class StalledError(RuntimeError):
    """The pipeline made no progress for too long; the process exits so it is restarted."""


class Pausable(Protocol):
    """A consumer that can stop fetching while it keeps polling (backpressure)."""

    def pause(self) -> None:
        """Stop fetching every assigned partition."""

    def resume(self) -> None:
        """Fetch again."""

    async def idle_poll(self, timeout_ms: int) -> None:
        """Poll without consuming, so the consumer group keeps this member."""


class BatchProcessor(Protocol):
    """The pure part of a batch: :class:`~detector.app.pipeline.Pipeline` or
    :class:`~detector.app.pipeline.DetectPipeline`."""

    def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Outputs of one batch."""
        ...


class Delivery:
    """Makes a batch's outputs durable, retrying with backoff while ``consumer`` is paused.

    Shared by both stages. Dead letters are written first, then alerts to every sink; an
    alert a sink refuses for good (:class:`AlertRejectedError`) is dead-lettered.
    """

    def __init__(
        self,
        consumer: Pausable,
        sinks: Sequence[Sink],
        deadletters: KafkaDeadLetterSink,
        health: HealthState,
        *,
        max_backoff_seconds: float = 30.0,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.consumer = consumer
        self.sinks = list(sinks)
        self.deadletters = deadletters
        self.health = health
        self.max_backoff_seconds = max_backoff_seconds
        self.stopping = stopping

    async def deliver(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter]) -> None:
        """Write ``dead_letters``, then ``alerts`` to every sink."""
        if dead_letters:
            await self.retry("deadletter", partial(self.deadletters.write, dead_letters))
            for letter in dead_letters:
                DEAD_LETTERS.labels(letter.stage, letter.reason).inc()
        if not alerts:
            return
        for sink in self.sinks:
            if isinstance(sink, NotificationSink):
                continue
            try:
                await self.retry(type(sink).__name__, partial(sink.write, alerts))
            except AlertRejectedError as exc:
                # Refused for good (e.g. a mapping conflict): keep the evidence, move on.
                await self._dead_letter(alerts, exc.rejected, "sink", "alert_rejected")
        # Notifications go out only once the alerts are stored, and never hold up
        # detection: a Slack or PagerDuty outage dead-letters the notification instead
        # of pausing the pipeline (the alert itself is already durable).
        for sink in self.sinks:
            if not isinstance(sink, NotificationSink):
                continue
            name = type(sink).__name__
            try:
                await sink.write(alerts)
            except AlertRejectedError as exc:
                await self._dead_letter(alerts, exc.rejected, "notify", "notification_rejected")
            except SinkError as exc:
                NOTIFY_FAILURES.labels(name).inc()
                log.error("notification_failed", sink=name, alerts=len(alerts), error=str(exc))
                failed = {alert.id: str(exc) for alert in alerts}
                await self._dead_letter(alerts, failed, "notify", "notification_failed")
        for alert in alerts:
            ALERTS.labels(alert.rule.id, alert.severity).inc()

    async def _dead_letter(
        self, alerts: Sequence[Alert], reasons: Mapping[str, str], stage: str, reason: str
    ) -> None:
        by_id = {alert.id: alert for alert in alerts}
        letters = [
            _alert_letter(by_id[alert_id], detail, stage, reason)
            for alert_id, detail in reasons.items()
            if alert_id in by_id
        ]
        await self.retry("deadletter", partial(self.deadletters.write, letters))

    async def retry(self, name: str, write: Callable[[], Awaitable[None]]) -> None:
        """Run ``write`` until it succeeds; on :class:`UnavailableError` (a sink, the schema
        registry) pause, poll, back off.

        Once a stop is requested a failed write is not retried: the stage raises
        :class:`DeliveryAbandonedError` and leaves the batch uncommitted, so a shutdown
        during an outage ends within a second or so instead of waiting for the sink.
        """
        attempt = 0
        paused = False
        while True:
            try:
                await write()
                break
            except UnavailableError as exc:
                attempt += 1
                SINK_RETRIES.labels(name).inc()
                log.warning("sink_unavailable", sink=name, attempt=attempt, error=str(exc))
                if self.stopping():
                    raise DeliveryAbandonedError(name) from exc
                if not paused:
                    self.consumer.pause()
                    paused = True
                delay = backoff_delay(attempt - 1, 0.2, self.max_backoff_seconds)
                deadline = time.monotonic() + delay
                # In slices, so a stop request is seen within a second.
                while not self.stopping() and (left := deadline - time.monotonic()) > 0:
                    await self.consumer.idle_poll(int(min(left, 1.0) * 1000))
                    self.health.progress()
        if paused:
            self.consumer.resume()
            log.info("sink_recovered", sink=name, attempts=attempt)


async def watchdog(health: HealthState, stage: str) -> None:
    """Raise :class:`StalledError` when ``health`` saw no progress for too long."""
    while True:
        await asyncio.sleep(health.stall_after_seconds / 4)
        if not health.healthy:
            log.error("pipeline_stalled", stage=stage, stall_after=health.stall_after_seconds)
            raise StalledError(
                f"{stage}: no poll completed in {health.stall_after_seconds:.0f}s; exiting so "
                "the consumer is restarted"
            )


class DetectStage:
    """The detect stage: a Kafka source, the pipeline, the sinks and the dead-letter topic.

    With ``matches`` (the two-stage runtime) the routed matches of each batch and a
    watermark heartbeat are produced to the matches topic before the commit; without it
    the pipeline correlates in process (single stage). The heartbeat carries the progress
    of every source partition the member owns; a partition without records for
    ``idle_after_seconds`` that is caught up is reported idle.
    """

    def __init__(
        self,
        source: KafkaSource,
        pipeline: BatchProcessor,
        sinks: Sequence[Sink],
        deadletters: KafkaDeadLetterSink,
        health: HealthState | None = None,
        *,
        matches: KafkaMatchSink | None = None,
        max_backoff_seconds: float = 30.0,
        prepare: Callable[[Sequence[RawRecord]], Awaitable[None]] | None = None,
        idle_after_seconds: float = 60.0,
    ) -> None:
        self.source = source
        # Runs before each batch is processed (schema-registry lookups); retried like a sink.
        self.prepare = prepare
        self.pipeline = pipeline
        self.sinks = list(sinks)
        self.deadletters = deadletters
        self.matches = matches
        self.tracker = SourceTracker(idle_after_seconds)
        self.health = health or HealthState()
        self._stopping = False
        self.delivery = Delivery(
            source,
            sinks,
            deadletters,
            self.health,
            max_backoff_seconds=max_backoff_seconds,
            stopping=lambda: self._stopping,
        )
        self.batches = 0
        self.lag = ConsumerLag("detect")

    def stop(self) -> None:
        """Drain: finish and commit the current batch, then return from :meth:`run`.

        A batch still waiting for an unavailable output is left uncommitted instead.
        """
        self._stopping = True
        self.source.stop()

    async def run(self) -> None:
        """Consume until stopped; a stalled loop raises :class:`StalledError`."""
        self.health.ready = True
        async with asyncio.TaskGroup() as tasks:
            guard = tasks.create_task(watchdog(self.health, "detect"))
            try:
                await self._consume()
            finally:
                guard.cancel()
                self.health.ready = False

    async def _consume(self) -> None:
        async for batch in self.source.batches():
            started = time.perf_counter()
            self.health.progress()
            partitions = batch.partitions
            self.lag.consumed({where: newest for where, (_, newest) in partitions.items()})
            await self.lag.update(self.source)
            try:
                if not batch:
                    # a partition may have become idle: say so, so it stops holding back
                    await self._heartbeat()
                    continue
                for (topic, _), (records, _) in partitions.items():
                    RECORDS.labels(topic).inc(records)
                if self.prepare is not None:
                    await self.delivery.retry("schema_registry", partial(self.prepare, batch))
                result = self.pipeline.process(batch)
                await self.delivery.deliver(result.alerts, result.dead_letters)
                await self._route(result, batch)
            except DeliveryAbandonedError as exc:
                # Not committed: the next owner of these partitions reads the batch again.
                log.warning(
                    "batch_abandoned", stage="detect", records=len(batch), output=exc.output
                )
                return
            await self._commit()
            self.batches += 1
            BATCH_SECONDS.labels("detect").observe(time.perf_counter() - started)
            log.info(
                "batch_committed",
                stage="detect",
                records=len(batch),
                events=result.events,
                alerts=len(result.alerts),
                matches=len(result.matches),
                dead_letters=len(result.dead_letters),
            )

    async def _route(self, result: BatchResult, batch: SourceBatch) -> None:
        """Produce the batch's routed matches with the member's heartbeat, a heartbeat of
        its own to the other partitions when the progress changed, and wait for the acks."""
        matches = self.matches
        if matches is None:
            return
        sources = {f"{topic}/{partition}" for topic, partition in batch.partitions}
        self.tracker.observe(sources, result.progress, result.earliest)
        progress, earliest = await self._progress()
        told: set[int] = set()
        if result.matches:
            mark = matches.watermark(progress, earliest)

            async def write() -> None:
                told.update(await matches.write(result.matches, mark))

            await self.delivery.retry("matches", write)
        await self._heartbeat(progress, earliest, told)

    async def _progress(self) -> tuple[Progress, dict[str, float]]:
        """The progress and earliest event time of every owned source partition."""
        assigned = {f"{tp.topic}/{tp.partition}" for tp in self.source.assignment()}
        quiet = self.tracker.quiet(assigned)
        caught_up = await self.source.caught_up(quiet) if quiet else set()
        return self.tracker.progress(assigned, caught_up), self.tracker.earliest_of(assigned)

    async def _heartbeat(
        self,
        progress: Progress | None = None,
        earliest: dict[str, float] | None = None,
        told: set[int] | None = None,
    ) -> None:
        """Send the progress of every owned source partition when it changed, to the
        partitions a batch record of matches did not already tell."""
        matches = self.matches
        if matches is None:
            return
        if progress is None or earliest is None:
            progress, earliest = await self._progress()
        if self.tracker.changed(progress, earliest):
            send = partial(matches.heartbeat, progress, earliest, skip=told or set())
            await self.delivery.retry("heartbeat", send)

    async def _commit(self) -> None:
        try:
            await self.source.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took partitions away mid-batch: their new owner re-reads from
            # the last commit; alerts are idempotent and re-sent matches are dropped.
            log.warning("commit_failed_rebalance", stage="detect", error=str(exc))


def _alert_letter(alert: Alert, detail: str, stage: str, reason: str) -> DeadLetter:
    """A dead letter holding an alert document a sink refused or could not deliver."""
    return DeadLetter(
        stage=stage,
        reason=reason,
        detail=detail,
        origin=Origin(),
        value=orjson.dumps(alert.to_document()),
    )
