"""Detection over pending events (ECS documents built only for matching events) gives
exactly the alerts and routed matches of detection over complete events.

A rule set that reads native fields only lets the pipelines leave ECS documents pending
(``Pipeline.pending``); the CloudTrail packs are such a set. Over every CloudTrail record
of the scenario and the OTRF sample, both pipelines are run with pending events and
with complete ones, and every output is compared in full.
"""

from __future__ import annotations

from typing import Any

import orjson
from conftest import ROOT, SIGMAHQ, pack_rules

from detector.app.ingest import Ingestor
from detector.app.pipeline import DetectPipeline, Pipeline
from detector.models import Origin, RawRecord, encode_routed

RULES = [SIGMAHQ / "aws" / "cloudtrail", ROOT / "detections" / "rules" / "cloudtrail"]
INPUTS = [
    ROOT / "examples" / "scenario" / "logs" / "cloudtrail.jsonl",
    *sorted((ROOT / "examples" / "samples" / "otrf-cloudtrail").glob("*.json")),
]


def records() -> list[RawRecord]:
    """Every CloudTrail line of the inputs, as Kafka records of one partition."""
    lines = [line for path in INPUTS for line in path.read_bytes().splitlines() if line.strip()]
    return [
        RawRecord(line, Origin(topic="cloudtrail", partition=0, offset=n), 1_900_000_000_000)
        for n, line in enumerate(lines)
    ]


def _alerts(alerts: list[Any]) -> list[bytes]:
    docs = [a.to_document() for a in alerts]
    for doc in docs:
        doc["event"].pop("created", None)
    return [orjson.dumps(doc) for doc in docs]


def test_cloudtrail_packs_leave_ecs_documents_pending() -> None:
    """The CloudTrail packs read native fields only, so the pipelines use pending events
    (the comparisons below then cover that path); the default packs do not."""
    ruleset = pack_rules(RULES)
    assert Pipeline(ruleset).pending and DetectPipeline(ruleset).pending
    assert not Pipeline(pack_rules([ROOT / "detections" / "rules"])).pending


def test_replay_pipeline_alerts_equal_with_pending_events() -> None:
    """The in-process pipeline (replay's) raises the same alerts, byte for byte and in
    the same order, with pending events as with complete ones."""
    ruleset = pack_rules(RULES)
    batch = records()
    outputs = []
    for pending in (True, False):
        pipeline = Pipeline(ruleset, default=Ingestor())
        pipeline.pending = pending
        events, dead = pipeline.ingest(batch)
        events.sort(key=lambda e: (e.timestamp, e.id))
        alerts = [*pipeline.detect(events), *pipeline.flush()]
        outputs.append((_alerts(alerts), [(d.stage, d.reason, d.detail) for d in dead]))
    assert outputs[0] == outputs[1]
    assert len(outputs[0][0]) > 50


def test_detect_stage_output_equal_with_pending_events() -> None:
    """The Kafka detect stage gives the same single-event alerts and the same routed
    matches (encoded as they are produced) with pending events as with complete ones."""
    ruleset = pack_rules(RULES)
    batch = records()
    outputs = []
    for pending in (True, False):
        stage = DetectPipeline(ruleset, default=Ingestor())
        stage.pending = pending
        result = stage.process(batch)
        routed = [(r.target, r.key, r.seq, encode_routed(r)) for r in result.matches]
        outputs.append((_alerts(result.alerts), routed, result.events, result.progress))
    assert outputs[0] == outputs[1]
    assert outputs[0][1], "no routed matches: the comparison would be empty"
