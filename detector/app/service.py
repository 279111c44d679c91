"""Composition root of ``detector run``: build every part from settings and run until stopped."""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack

import structlog

from detector.app.health import HealthServer, HealthState
from detector.app.ingest import Ingestor, load_schemas
from detector.app.pipeline import Pipeline
from detector.app.runner import Runner
from detector.app.settings import DetectorSettings
from detector.decode import DecodeLimits
from detector.detect import RuleSet, load_rules
from detector.errors import ConfigError, RuleLoadError
from detector.models import Sink
from detector.sinks.bulk import BulkSink
from detector.sinks.config import SinksConfig
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sinks.jsonl import JsonLinesSink
from detector.sources.kafka import KafkaSource

log = structlog.get_logger(__name__)


def load_ruleset(settings: DetectorSettings) -> RuleSet:
    """Load the configured rules; any rejected rule stops start-up with every error listed."""
    placeholders = {k: tuple(v) for k, v in settings.rules.placeholders.items()}
    ruleset = load_rules(settings.rules.paths, placeholders=placeholders)
    if ruleset.errors:
        raise RuleLoadError(list(ruleset.errors))
    if not ruleset.rules:
        raise ConfigError(
            f"no rules found under {', '.join(map(str, settings.rules.paths))}; "
            "set rules.paths (DETECTOR_RULES__PATHS)"
        )
    return ruleset


def build_pipeline(settings: DetectorSettings, ruleset: RuleSet) -> Pipeline:
    """Per-topic ingestors (source parser and wire format) around the detection pipeline."""
    limits = DecodeLimits(max_bytes=settings.decode.max_record_bytes)
    needs_avro = any(t.format != "json" for t in settings.kafka.topic_formats.values())
    schemas = load_schemas(settings.decode.schemas_dir) if needs_avro else None
    ingestors = {
        topic: Ingestor(source=cfg.source, fmt=cfg.format, limits=limits, schemas=schemas)
        for topic, cfg in settings.kafka.topic_formats.items()
    }
    return Pipeline(ruleset, default=Ingestor(limits=limits), ingestors=ingestors)


def build_sinks(config: SinksConfig) -> list[Sink]:
    """Every configured alert sink (at least one is required)."""
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
    return sinks


async def serve(settings: DetectorSettings, ruleset: RuleSet | None = None) -> None:
    """Run the streaming pipeline until SIGTERM/SIGINT, then drain, commit and close."""
    ruleset = ruleset or load_ruleset(settings)
    pipeline = build_pipeline(settings, ruleset)
    sinks = build_sinks(settings.sinks)
    health = HealthState()
    async with AsyncExitStack() as stack:
        for sink in sinks:
            stack.push_async_callback(sink.close)
            if isinstance(sink, BulkSink):
                await sink.ensure_setup()
        deadletters = KafkaDeadLetterSink(
            settings.kafka.bootstrap_servers, settings.kafka.deadletter_topic
        )
        await deadletters.start()
        stack.push_async_callback(deadletters.close)
        source = await stack.enter_async_context(KafkaSource(settings.kafka))
        if settings.health.enabled:
            server = HealthServer(health, settings.health.host, settings.health.port)
            server.start()
            stack.callback(server.close)
        runner = Runner(source, pipeline, sinks, deadletters, health)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        log.info(
            "detector_started", rules=len(ruleset.rules), correlations=len(ruleset.correlations)
        )
        await runner.run()
        log.info("detector_stopped", batches=runner.batches)
