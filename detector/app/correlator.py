"""The correlate stage: stateful correlation and first-seen rules over the matches topic.

Each assigned partition of the matches topic owns a :class:`PartitionState` (one
:class:`CorrelationEngine` per correlation unit and one :class:`FirstSeenEngine`, fed
with ``partition=<kafka partition>``). Per batch:

1. decode and apply the records (routed matches; watermark heartbeats close windows);
   undecodable records go to the dead-letter topic;
2. write dead letters and alerts to the sinks (backpressure as in the detect stage);
3. write what the batch changed in each partition's state to the compacted state topic,
   in one transaction: a record per changed group key or first-seen term (a tombstone
   for a removed one), then the partition's meta record under
   ``<group>/<topic>/<partition>`` with the next input offset;
4. commit those offsets.

On assignment the partition's records are read from the state topic (committed ones
only) before any record is processed, and the consumer seeks to the meta record's
offset (the state already holds every input below it). On revocation nothing is
flushed: windows stay open in the changelog for the next owner. A crash anywhere
re-reads from the last committed state and re-emits the same alert ids
(deterministic, ``op_type=create``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import structlog
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from detector.app.collector import freeze_restored_state
from detector.app.health import HealthState
from detector.app.metrics import (
    BATCH_SECONDS,
    CHECKPOINT_BYTES,
    DUPLICATE_MATCHES,
    LATE_EVENTS,
    STATE_EVICTIONS,
    STATE_GROUPS,
    STATE_RESTORES,
    TOO_LATE_EVENTS,
    ConsumerLag,
)
from detector.app.runner import Delivery, watchdog
from detector.errors import DeliveryAbandonedError, DetectorError
from detector.models import Alert, DeadLetter, Origin, Sink, decode_matches_record
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sources.kafkasecurity import KafkaSecurity
from detector.sources.matches import MatchesConsumer
from detector.state import KafkaChangelogStore
from detector.state.partition import SEP, EngineFactory, PartitionState, Record

log = structlog.get_logger(__name__)

#: Baseline key of the matches a partition's buffer put back in order (late, in time).
REORDERED = "reordered"


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Restores state on assignment and checkpoints on revocation (aiokafka awaits both
    before fetching again)."""

    def __init__(self, correlator: CorrelateStage) -> None:
        self.correlator = correlator

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.correlator.revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.correlator.assign(assigned)


class CorrelateStage:
    """The correlate stage: a consumer group on the matches topic with per-partition state.

    ``snapshot_interval_seconds`` (0: every batch) spaces checkpoints of a busy partition;
    offsets are committed only with a checkpoint, so a longer interval means more input to
    re-read after a crash, never lost or duplicated alerts.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: str,
        group_id: str,
        factory: EngineFactory,
        sinks: list[Sink],
        deadletters: KafkaDeadLetterSink,
        store: KafkaChangelogStore,
        health: HealthState | None = None,
        client_id: str = "detector-correlate",
        max_batch_records: int = 500,
        poll_timeout_ms: int = 500,
        max_partition_fetch_bytes: int = 2 * 1024 * 1024,
        snapshot_interval_seconds: float = 0.0,
        max_backoff_seconds: float = 30.0,
        security: KafkaSecurity | None = None,
        source_topics: Sequence[str] = (),
    ) -> None:
        self.topic = topic
        #: The detect stage's source topics: their partitions hold every new state's
        #: watermark until a heartbeat reports them.
        self.source_topics = tuple(source_topics)
        self.group_id = group_id
        self.factory = factory
        self.store = store
        self.health = health or HealthState()
        self.max_batch_records = max_batch_records
        self.poll_timeout_ms = poll_timeout_ms
        self.snapshot_interval_seconds = snapshot_interval_seconds
        self._consumer = MatchesConsumer(
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            group_id=group_id,
            client_id=client_id,
            max_partition_fetch_bytes=max_partition_fetch_bytes,
            security=security,
        )
        self.delivery = Delivery(
            self._consumer,
            sinks,
            deadletters,
            self.health,
            max_backoff_seconds=max_backoff_seconds,
            stopping=lambda: self._stopping,
        )
        self.states: dict[int, PartitionState] = {}
        self._lock = asyncio.Lock()
        self._stopping = False
        self._last_checkpoint = 0.0
        self._last_observed = 0.0
        self._baseline: dict[tuple[int, str, str], int] = {}
        self.batches = 0
        self.lag = ConsumerLag("correlate")

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the consumer group (assignment and restore happen on the first poll)."""
        await self._consumer.start(_Rebalance(self))
        log.info("correlate_stage_started", topic=self.topic, group=self.group_id)

    def stop(self) -> None:
        """Drain: finish the current batch, checkpoint, commit, then return from :meth:`run`."""
        self._stopping = True

    async def close(self) -> None:
        """Leave the group; idempotent."""
        await self._consumer.close()

    async def run(self) -> None:
        """Consume until stopped; a stalled loop raises ``StalledError``."""
        async with asyncio.TaskGroup() as tasks:
            guard = tasks.create_task(watchdog(self.health, "correlate"))
            try:
                await self._consume()
            finally:
                guard.cancel()
                self.health.ready = False

    async def _consume(self) -> None:
        try:
            while not self._stopping:
                polled = await self._consumer.getmany(
                    timeout_ms=self.poll_timeout_ms, max_records=self.max_batch_records
                )
                self.health.progress()
                self.lag.polled(polled)
                await self.lag.update(self._consumer)
                async with self._lock:
                    await self._process(polled)
                    await self._checkpoint()
                    self._observe()
            async with self._lock:
                await self._checkpoint(force=True)
        except DeliveryAbandonedError as exc:
            # Stopped during an outage: the undelivered batch's partitions were forgotten
            # in _process; the rest keep their last checkpoint and commit.
            log.warning("correlate_stage_stopped_during_outage", output=exc.output)
        log.info("correlate_stage_stopped", batches=self.batches)

    # -- one batch ----------------------------------------------------------------------

    async def _process(self, polled: Mapping[TopicPartition, list[Any]]) -> None:
        started = time.perf_counter()
        now = time.time()
        alerts: dict[str, Alert] = {}
        dead: list[DeadLetter] = []
        records = 0
        touched: set[int] = set()
        for tp, messages in polled.items():
            state = self.states.get(tp.partition)
            if state is None:  # revoked while the batch was fetched
                continue
            duplicates = state.duplicates
            for msg in messages:
                below = state.offset is not None and msg.offset < state.offset
                if below and msg.offset not in state.reloading:
                    # Already reflected in the restored state: the seek on assignment can
                    # lose a race with the fetcher's own position reset, so check here too.
                    continue
                records += 1
                touched.add(tp.partition)
                try:
                    record = decode_matches_record(msg.value)
                except ValueError as exc:
                    dead.append(
                        DeadLetter(
                            stage="correlate",
                            reason="invalid_match",
                            detail=str(exc),
                            origin=Origin(tp.topic, tp.partition, msg.offset),
                            value=msg.value or b"",
                        )
                    )
                    state.reloading.pop(msg.offset, None)
                    if not below:
                        state.offset = msg.offset + 1
                        state.dirty = True
                else:
                    state.read(msg.offset, record, now)
            DUPLICATE_MATCHES.inc(state.duplicates - duplicates)
        # Every partition, polled or not: an idle or stale source can let the watermark
        # move without a record.
        for partition, state in self.states.items():
            released = state.release()
            if released:
                touched.add(partition)
            for alert in released:
                alerts.setdefault(alert.id, alert)
            for target in state.unknown_targets:
                log.warning("match_for_unknown_rule", target=target, partition=partition)
            state.unknown_targets.clear()
        if not records and not alerts and not dead:
            return
        try:
            await self.delivery.deliver(list(alerts.values()), dead)
        except BaseException:
            # These states already reflect the batch, but its alerts are not durable: a
            # checkpoint of them (on the revoke or stop that follows) would skip those alerts
            # for good. Forget them; the next owner restores the last checkpoint and reads
            # the batch again, firing the same alert ids.
            abandoned = touched
            self._forget(abandoned)
            log.warning("batch_abandoned", stage="correlate", partitions=sorted(abandoned))
            raise
        self.batches += 1
        BATCH_SECONDS.labels("correlate").observe(time.perf_counter() - started)
        log.info(
            "batch_processed",
            stage="correlate",
            records=records,
            alerts=len(alerts),
            dead_letters=len(dead),
            seconds=round(time.perf_counter() - started, 4),
        )

    async def _checkpoint(
        self, *, force: bool = False, only: set[TopicPartition] | None = None
    ) -> None:
        """Write the checkpoint of every changed partition, then commit their offsets."""
        now = time.monotonic()
        if not force and now - self._last_checkpoint < self.snapshot_interval_seconds:
            return
        self._last_checkpoint = now
        offsets: dict[TopicPartition, int] = {}
        records: dict[int, list[Record]] = {}
        for partition, state in self.states.items():
            tp = TopicPartition(self.topic, partition)
            if not state.dirty or state.offset is None or (only is not None and tp not in only):
                continue
            records[partition] = state.changelog(self.state_key(partition))
            # the oldest held match: a restore without this checkpoint reads it again
            resume = state.resume_offset()
            offsets[tp] = state.offset if resume is None else resume
        if not records:
            return
        try:
            await self.delivery.retry("state", partial(self.store.write, records))
        except BaseException:
            # The changes are taken from the engines: a later checkpoint of these states
            # would lack them. Forget the states; the next owner restores the last one.
            self._forget(set(records))
            log.warning("checkpoint_abandoned", partitions=sorted(records))
            raise
        for batch in records.values():
            CHECKPOINT_BYTES.observe(sum(len(k) + len(v or b"") for k, v in batch))
        for partition in records:
            self.states[partition].dirty = False
        await self.commit(offsets)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit ``offsets`` (each the next offset to read) once their state is saved."""
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The state topic already holds these offsets; the next owner seeks to them.
            log.warning("commit_failed_rebalance", stage="correlate", error=str(exc))

    def state_key(self, partition: int) -> str:
        """The changelog key of a partition's state: ``<group>/<topic>/<partition>``."""
        return f"{self.group_id}/{self.topic}/{partition}"

    # -- rebalance ----------------------------------------------------------------------

    async def assign(self, assigned: set[TopicPartition]) -> None:
        """Restore every newly assigned partition from the changelog, then seek to it."""
        async with self._lock:
            new = sorted(tp.partition for tp in assigned if tp.partition not in self.states)
            states = {p: PartitionState(p, self.factory) for p in new}
            bases = {self.state_key(p).encode(): states[p] for p in new}
            failed: dict[int, str] = {}

            def load(key: bytes, value: bytes | None) -> None:
                base, sep, tail = key.partition(SEP)
                state = bases.get(base)
                if state is None or state.partition in failed:
                    return
                try:
                    state.load_record(sep + tail, value)
                except ValueError as exc:
                    failed[state.partition] = str(exc)

            started = time.monotonic()
            records = await self.store.replay(new, load)
            expected = await self._source_partitions() if states else set()
            for partition, loaded in states.items():
                state = loaded
                try:
                    if partition in failed:
                        raise ValueError(failed[partition])
                    restored = state.finish_restore(time.time())
                except ValueError as exc:
                    # Unreadable state: start empty from the committed offset, loudly.
                    STATE_RESTORES.labels("failed").inc()
                    log.error("state_restore_failed", partition=partition, error=str(exc))
                    state = PartitionState(partition, self.factory)
                else:
                    if restored:
                        STATE_RESTORES.labels("restored").inc()
                        resume = state.resume_offset()
                        assert resume is not None
                        self._consumer.seek(TopicPartition(self.topic, partition), resume)
                    else:
                        STATE_RESTORES.labels("empty").inc()
                state.expect(expected, time.time())
                self.states[partition] = state
                self._set_baseline(partition, state)
            if records:
                freeze_restored_state()
            log.info(
                "state_restored",
                partitions=new,
                records=records,
                seconds=round(time.monotonic() - started, 3),
            )
            self.health.ready = True
            log.info(
                "partitions_assigned",
                stage="correlate",
                partitions=sorted(tp.partition for tp in assigned),
                restored={p: self.states[p].offset for p in new},
            )

    async def _source_partitions(self) -> set[str]:
        """The partitions of the source topics, or none when the metadata cannot be read
        (the watermark then waits only for the sources heartbeats report, as before)."""
        if not self.source_topics:
            return set()
        try:
            return await self._consumer.partitions_of(self.source_topics)
        except KafkaError as exc:
            log.warning("source_partitions_unknown", error=str(exc))
            return set()

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """Checkpoint what changed since the last checkpoint, then drop the state.

        No window is flushed: it stays open in the changelog for the next owner.
        """
        async with self._lock:
            try:
                await self._checkpoint(force=True, only=revoked)
            except DetectorError as exc:
                # The next owner re-reads from the previous checkpoint (same alert ids).
                log.warning("checkpoint_on_revoke_failed", error=str(exc))
            self._forget({tp.partition for tp in revoked})
            revoked_ids = sorted(tp.partition for tp in revoked)
            log.info("partitions_revoked", stage="correlate", partitions=revoked_ids)

    def _forget(self, partitions: set[int]) -> None:
        """Drop the in-memory state of ``partitions``; the changelog keeps their last checkpoint."""
        for partition in partitions:
            self.states.pop(partition, None)
            for key in [k for k in self._baseline if k[0] == partition]:
                del self._baseline[key]

    # -- observability ------------------------------------------------------------------

    def _set_baseline(self, partition: int, state: PartitionState) -> None:
        for stats in state.stats():
            for rule_id, rule in stats.rules.items():
                for name in ("late_events", "too_late_events", "evictions"):
                    self._baseline[(partition, rule_id, name)] = int(getattr(rule, name))
        self._baseline[(partition, "", REORDERED)] = state.reordered

    def _observe(self, min_interval: float = 1.0) -> None:
        """Export state size and counter increases; too-late events and evictions are
        logged at warning level with the rule (they must never be silent)."""
        now = time.monotonic()
        if now - self._last_observed < min_interval:
            return
        self._last_observed = now
        groups = 0
        for partition, state in self.states.items():
            reordered = state.reordered - self._baseline.get((partition, "", REORDERED), 0)
            if reordered > 0:
                self._baseline[(partition, "", REORDERED)] = state.reordered
                LATE_EVENTS.inc(reordered)
            for stats in state.stats():
                groups += stats.active_groups
                for rule_id, rule in stats.rules.items():
                    for name in ("late_events", "too_late_events", "evictions"):
                        current = int(getattr(rule, name))
                        key = (partition, rule_id, name)
                        delta = current - self._baseline.get(key, 0)
                        if delta <= 0:
                            continue
                        self._baseline[key] = current
                        if name == "late_events":
                            LATE_EVENTS.inc(delta)
                        elif name == "too_late_events":
                            TOO_LATE_EVENTS.labels(rule_id).inc(delta)
                            samples = [s for s in stats.too_late_samples if s[0] == rule_id]
                            log.warning(
                                "too_late_events",
                                rule_id=rule_id,
                                partition=partition,
                                count=delta,
                                watermark=stats.watermarks.get(partition),
                                samples=[{"event_id": s[1], "time": s[2]} for s in samples[-3:]],
                            )
                        else:
                            STATE_EVICTIONS.labels(rule_id).inc(delta)
                            log.warning(
                                "state_groups_evicted",
                                rule_id=rule_id,
                                partition=partition,
                                count=delta,
                                max_groups_per_rule=self.factory.max_groups_per_rule,
                            )
        STATE_GROUPS.set(groups)
