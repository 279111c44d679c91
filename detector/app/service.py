"""Composition root of ``detector run``: build every part from settings and run until stopped.

The runtime has two stages (DESIGN.md section 5): **detect** (stateless, consumes the
source topics, writes single-event alerts and routes matches to the internal matches
topic) and **correlate** (stateful per matches-topic partition, state in a compacted
changelog topic). ``stage="all"`` runs both in one process as two tasks of one
``TaskGroup``; scale out by starting more processes (each joins both consumer groups).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Literal

import structlog
from aiokafka.errors import KafkaError

from detector.app.collector import tune_collector
from detector.app.correlator import CorrelateStage
from detector.app.health import HealthServer, HealthState
from detector.app.ingest import Ingestor, load_schemas
from detector.app.pipeline import DetectPipeline
from detector.app.policy import effective_rules, log_policy
from detector.app.rulepack import rule_loader
from detector.app.runner import DetectStage
from detector.app.schemaresolver import SchemaResolver
from detector.app.settings import DetectorSettings
from detector.decode import DecodeLimits
from detector.detect import RuleSet
from detector.errors import (
    ConfigError,
    MissingPlaceholderError,
    RuleError,
    RuleLoadError,
    SourceError,
    UnavailableError,
)
from detector.models import Sink
from detector.normalize import COMPILED
from detector.sinks.bulk import BulkSink
from detector.sinks.config import SinksConfig
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sinks.jsonl import JsonLinesSink
from detector.sinks.matches import KafkaMatchSink
from detector.sinks.retry import backoff_delay
from detector.sources.kafka import KafkaSource
from detector.sources.kafkasecurity import KafkaSecurity, check_connection, kafka_security
from detector.sources.schemaregistry import SchemaRegistryClient
from detector.state import KafkaChangelogStore, TopicSpec, ensure_topics
from detector.state.changelog import DEFAULT_MAX_BYTES
from detector.state.partition import EngineFactory

log = structlog.get_logger(__name__)

#: Start-up failures that mean "a service is not reachable yet": wait and try again.
#: Configuration errors (bad credentials, TLS) are not among them: they exit at once.
STARTUP_WAITS: tuple[type[BaseException], ...] = (
    UnavailableError,
    SourceError,
    KafkaError,
    OSError,
    TimeoutError,
)

Stage = Literal["all", "detect", "correlate"]
STAGES: tuple[Stage, ...] = ("all", "detect", "correlate")


def load_ruleset(settings: DetectorSettings) -> RuleSet:
    """Load the configured rules under the rule policy (exceptions, ``rules.disabled``...).

    A rejected rule costs only itself: it is logged (``rule_rejected``) with its file and
    reason and the other rules run; start-up stops only when no rule is left. A rule whose
    placeholder has no value is a configuration gap, not a bad rule: start-up stops with
    each one listed, unless ``rules.missing_placeholders`` is ``disable``.
    """
    ruleset = rule_loader(settings.rules)(settings.rules.paths)
    unfilled: list[RuleError] = [
        e for e in ruleset.errors if isinstance(e, MissingPlaceholderError)
    ]
    if unfilled:
        raise RuleLoadError(unfilled)
    for note in ruleset.disabled:
        log.warning("rule_disabled", path=note.path, reason=str(note))
    for error in ruleset.errors:
        log.error("rule_rejected", path=error.path, line=error.line, error=str(error))
    if ruleset.errors and not ruleset.rules:
        raise RuleLoadError(list(ruleset.errors))
    effective, warnings = effective_rules(settings.rules, ruleset)
    log_policy(effective, warnings)
    ruleset = effective.ruleset
    if not ruleset.rules:
        raise ConfigError(
            f"no rules found under {', '.join(map(str, settings.rules.paths))}; "
            "set rules.paths (DETECTOR_RULES__PATHS)"
        )
    return ruleset


def _ingestors(settings: DetectorSettings) -> tuple[Ingestor, dict[str, Ingestor]]:
    limits = DecodeLimits(max_bytes=settings.decode.max_record_bytes)
    needs_avro = any(t.format != "json" for t in settings.kafka.topic_formats.values())
    schemas = load_schemas(settings.decode.schemas_dir) if needs_avro else None
    ingestors = {
        topic: Ingestor(source=cfg.source, fmt=cfg.format, limits=limits, schemas=schemas)
        for topic, cfg in settings.kafka.topic_formats.items()
    }
    return Ingestor(limits=limits), ingestors


def build_detect_pipeline(settings: DetectorSettings, ruleset: RuleSet) -> DetectPipeline:
    """Per-topic ingestors around the detect stage (single-event alerts, routed matches)."""
    default, ingestors = _ingestors(settings)
    return DetectPipeline(ruleset, default=default, ingestors=ingestors)


def build_sinks(config: SinksConfig) -> list[Sink]:
    """Every configured sink: the durable ones (at least one), then notifications."""
    sinks: list[Sink] = []
    if config.elasticsearch is not None:
        # Imported on demand: a process loads only the search client it is configured for.
        from detector.sinks.elasticsearch import ElasticsearchSink  # noqa: PLC0415

        sinks.append(ElasticsearchSink(config.elasticsearch))
    if config.opensearch is not None:
        from detector.sinks.opensearch import OpenSearchSink  # noqa: PLC0415

        sinks.append(OpenSearchSink(config.opensearch))
    if config.jsonl is not None:
        sinks.append(JsonLinesSink(config.jsonl))
    if not sinks:
        raise ConfigError(
            "no alert sink configured: set sinks.elasticsearch.hosts, sinks.opensearch.hosts "
            "or sinks.jsonl.path (e.g. DETECTOR_SINKS__ELASTICSEARCH__HOSTS=http://es:9200)"
        )
    # Notifications come after the durable sinks (a notification alone keeps no alert).
    if config.slack is not None:
        from detector.sinks.notify.slack import SlackSink  # noqa: PLC0415

        sinks.append(SlackSink(config.slack))
    if config.pagerduty is not None:
        from detector.sinks.notify.pagerduty import PagerDutySink  # noqa: PLC0415

        sinks.append(PagerDutySink(config.pagerduty))
    return sinks


def internal_topics(settings: DetectorSettings) -> list[TopicSpec]:
    """The matches topic and the compacted state topic, as created when missing."""
    kafka = settings.kafka
    return [
        TopicSpec(kafka.matches_topic, kafka.matches_partitions, kafka.internal_replication_factor),
        TopicSpec(
            kafka.state_topic,
            kafka.matches_partitions,
            kafka.internal_replication_factor,
            configs={
                "cleanup.policy": "compact",
                "max.message.bytes": str(DEFAULT_MAX_BYTES),
                "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": str(3_600_000),
            },
        ),
    ]


class Service:
    """The stages of one process, built from settings; :meth:`run` until :meth:`stop`.

    ``health`` is what the HTTP endpoint reports: ready once every stage runs and the
    correlate stage restored its first assignment; healthy while every stage polls.
    """

    def __init__(
        self,
        settings: DetectorSettings,
        ruleset: RuleSet | None = None,
        stage: Stage = "all",
        health: HealthState | None = None,
    ) -> None:
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        self.settings = settings
        self.ruleset = ruleset or load_ruleset(settings)
        self.stage = stage
        self.health = health or HealthState()
        self.runner: DetectStage | None = None
        self.correlator: CorrelateStage | None = None
        self._stages: list[HealthState] = []
        self._stopping = False
        self._started = False
        #: Ceiling of the wait between start-up attempts during an outage, seconds.
        self.max_startup_backoff = 30.0
        # one set of TLS/SASL client arguments for every Kafka client (built at run())
        self._security: KafkaSecurity = {}

    def stop(self) -> None:
        """Drain every stage: finish the current batch, make it durable, commit, return."""
        self._stopping = True
        if self.runner is not None:
            self.runner.stop()
        if self.correlator is not None:
            self.correlator.stop()

    async def run(self) -> None:
        """Create internal topics, start the stages and run them until stopped.

        Start-up waits for its services: while the broker, the search engine or another
        output is unreachable it retries with backoff (not ready, but alive), so a member
        started during an outage becomes ready when the outage ends instead of exiting.
        """
        attempt = 0
        while True:
            try:
                await self._run()
                return
            except STARTUP_WAITS as exc:
                if self._started or self._stopping:
                    raise
                delay = backoff_delay(attempt, 0.5, self.max_startup_backoff)
                attempt += 1
                log.warning(
                    "startup_waiting", attempt=attempt, retry_in=round(delay, 1), error=str(exc)
                )
                await self._pause(delay)
                if self._stopping:
                    return

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` in slices, alive for the health check, ending early on stop."""
        deadline = asyncio.get_running_loop().time() + seconds
        while not self._stopping and (left := deadline - asyncio.get_running_loop().time()) > 0:
            self.health.progress()
            await asyncio.sleep(min(left, 0.5))

    async def _run(self) -> None:
        settings, kafka = self.settings, self.settings.kafka
        self.runner = self.correlator = None
        self._stages = []
        sinks = build_sinks(settings.sinks)
        async with AsyncExitStack() as stack:
            self._security = kafka_security(kafka)
            await check_connection(kafka.bootstrap_servers, self._security)
            await ensure_topics(kafka.bootstrap_servers, internal_topics(settings), self._security)
            for sink in sinks:
                stack.push_async_callback(sink.close)
                if isinstance(sink, BulkSink):
                    await sink.ensure_setup()
            deadletters = KafkaDeadLetterSink(
                kafka.bootstrap_servers, kafka.deadletter_topic, self._security
            )
            await deadletters.start()
            stack.push_async_callback(deadletters.close)
            if self.stage in ("all", "detect"):
                await self._build_detect(stack, sinks, deadletters)
            if self.stage in ("all", "correlate"):
                await self._build_correlate(stack, sinks, deadletters)
            log.info(
                "detector_started",
                stage=self.stage,
                rules=len(self.ruleset.rules),
                correlations=len(self.ruleset.correlations),
                # An install without a C compiler runs the slower interpreted build.
                hot_path="compiled" if COMPILED else "interpreted",
            )
            self._started = True
            if self._stopping:
                self.stop()
            async with asyncio.TaskGroup() as tasks:
                bridge = tasks.create_task(self._report_health())
                try:
                    async with asyncio.TaskGroup() as stages:
                        if self.runner is not None:
                            stages.create_task(self.runner.run())
                        if self.correlator is not None:
                            stages.create_task(self.correlator.run())
                finally:
                    bridge.cancel()
                    self.health.ready = False

    async def _build_detect(
        self, stack: AsyncExitStack, sinks: list[Sink], deadletters: KafkaDeadLetterSink
    ) -> None:
        kafka = self.settings.kafka
        matches = KafkaMatchSink(
            kafka.bootstrap_servers, kafka.matches_topic, kafka.client_id, self._security
        )
        await matches.start()
        stack.push_async_callback(matches.close)
        source = await stack.enter_async_context(KafkaSource(kafka, self._security))
        health = HealthState()
        self._stages.append(health)
        pipeline = build_detect_pipeline(self.settings, self.ruleset)
        resolver = None
        registry = self.settings.decode.schema_registry
        if registry is not None:
            client = SchemaRegistryClient(registry)
            stack.push_async_callback(client.close)
            await client.check()
            resolver = SchemaResolver.for_ingestors(client, pipeline.ingestors)
        self.runner = DetectStage(
            source,
            pipeline,
            sinks,
            deadletters,
            health,
            matches=matches,
            prepare=resolver.resolve if resolver is not None and resolver.stores else None,
            idle_after_seconds=kafka.source_idle_seconds,
        )

    async def _build_correlate(
        self, stack: AsyncExitStack, sinks: list[Sink], deadletters: KafkaDeadLetterSink
    ) -> None:
        kafka, rules = self.settings.kafka, self.settings.rules
        store = KafkaChangelogStore(
            kafka.bootstrap_servers, kafka.state_topic, security=self._security
        )
        await store.start()
        stack.push_async_callback(store.close)
        router = (
            self.runner.pipeline.router
            if self.runner is not None and isinstance(self.runner.pipeline, DetectPipeline)
            else build_detect_pipeline(self.settings, self.ruleset).router
        )
        factory = EngineFactory(
            self.ruleset,
            router,
            allowed_lateness=rules.allowed_lateness_seconds,
            max_groups_per_rule=rules.max_groups_per_rule,
            stale_after_seconds=kafka.source_stale_seconds,
        )
        health = HealthState()
        self._stages.append(health)
        correlator = CorrelateStage(
            bootstrap_servers=kafka.bootstrap_servers,
            topic=kafka.matches_topic,
            group_id=kafka.correlate_group_id,
            factory=factory,
            sinks=sinks,
            deadletters=deadletters,
            store=store,
            health=health,
            client_id=f"{kafka.client_id}-correlate",
            max_batch_records=kafka.max_batch_records,
            poll_timeout_ms=kafka.poll_timeout_ms,
            max_partition_fetch_bytes=kafka.max_partition_fetch_bytes,
            source_topics=kafka.topics,
            snapshot_interval_seconds=kafka.state_snapshot_interval_seconds,
            security=self._security,
        )
        await correlator.start()
        stack.push_async_callback(correlator.close)
        self.correlator = correlator

    async def _report_health(self) -> None:
        """Mirror the stages into :attr:`health`: ready when all are, stale when any is."""
        while True:
            self.health.ready = bool(self._stages) and all(s.ready for s in self._stages)
            self.health.last_progress = min(s.last_progress for s in self._stages)
            await asyncio.sleep(0.5)


async def serve(
    settings: DetectorSettings,
    ruleset: RuleSet | None = None,
    stage: Stage = "all",
    on_stop: Callable[[], None] | None = None,
    health: HealthState | None = None,
) -> None:
    """Run ``stage`` until SIGTERM/SIGINT, then drain, commit and close; ``on_stop`` is
    called with the signal too (a supervisor stops its workers). ``health`` is what the
    endpoint reports (a supervisor adds its workers' readiness to it)."""
    service = Service(settings, ruleset, stage, health)

    def stop() -> None:
        service.stop()
        if on_stop is not None:
            on_stop()

    tune_collector()  # again: freezes the rules and clients built by now
    server: HealthServer | None = None
    if settings.health.enabled:
        server = HealthServer(service.health, settings.health.host, settings.health.port)
        server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await service.run()
    finally:
        if server is not None:
            server.close()
    batches = service.runner.batches if service.runner is not None else 0
    correlated = service.correlator.batches if service.correlator is not None else 0
    log.info("detector_stopped", stage=stage, batches=batches, correlate_batches=correlated)
