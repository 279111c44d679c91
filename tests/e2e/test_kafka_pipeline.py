"""End to end on the real services: Kafka -> detector -> search engine, and replay safety."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from http_support import Reply, ScriptedServer
from test_two_stage import _until

from detector.app.ingest import Ingestor
from detector.app.pipeline import Pipeline
from detector.app.runner import DetectStage
from detector.detect import load_rules
from detector.models import Sink
from detector.sinks.config import OpenSearchSinkConfig, RetryConfig
from detector.sinks.deadletters import KafkaDeadLetterSink
from detector.sinks.opensearch import OpenSearchSink
from detector.sources.kafka import KafkaSource, KafkaSourceConfig

pytestmark = pytest.mark.services

RULE = """
title: ECR image pulled by an IAM user access key
id: 6f7a1d4e-2b1c-4c55-9d51-0c4a3f1e9b21
status: test
description: Test rule for the end-to-end slice.
author: detector project
date: 2026-11-28
tags: [attack.collection, attack.t1530]
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventSource: ecr.amazonaws.com
    eventName: BatchGetImage
    userIdentity.type: IAMUser
  condition: selection
falsepositives: [Developers pulling images with personal keys]
level: high
"""

RECORD = {
    "eventVersion": "1.08",
    "userIdentity": {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE",
        "arn": "arn:aws:iam::111122223333:user/ci-bot",
        "accountId": "111122223333",
        "accessKeyId": "AKIAEXAMPLE",
        "userName": "ci-bot",
    },
    "eventTime": "2026-11-28T09:00:00Z",
    "eventSource": "ecr.amazonaws.com",
    "eventName": "BatchGetImage",
    "awsRegion": "eu-west-1",
    "sourceIPAddress": "203.0.113.9",
    "userAgent": "docker/27.0",
    "requestParameters": {
        "registryId": "111122223333",
        "repositoryName": "payments/api",
        "imageIds": [{"imageTag": "v1.2.3"}],
    },
    "responseElements": None,
    "eventID": "0f3c2a9e-1111-4a2b-9c3d-abcdefabcdef",
    "eventType": "AwsApiCall",
    "recipientAccountId": "111122223333",
}


@pytest.fixture
def topic() -> str:
    return f"e2e-cloudtrail-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def search(services: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.search_url, timeout=10) as client:
        yield client


async def _produce(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def _rewind(bootstrap: str, group: str, topic: str) -> None:
    """Commit offset 0 for the group, as an operator resetting offsets would."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(0, "")})
    finally:
        await consumer.stop()


async def _run_until(runner: DetectStage, done: asyncio.Event) -> None:
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 30)


class _Recording:
    """Wraps a sink and signals once a batch with alerts was written (then committed)."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.written = 0
        self.event = asyncio.Event()

    async def write(self, alerts):  # type: ignore[no-untyped-def]
        await self.sink.write(alerts)
        self.written += len(alerts)
        self.event.set()

    async def close(self) -> None:
        await self.sink.close()


async def _one_run(
    services: Any, rules_dir: Path, topic: str, group: str, index: str
) -> _Recording:
    source = KafkaSource(
        KafkaSourceConfig(
            bootstrap_servers=services.kafka,
            group_id=group,
            topics=[topic],
            poll_timeout_ms=200,
        )
    )
    sink = OpenSearchSink(
        OpenSearchSinkConfig(
            hosts=[services.search_url],
            index=index,
            retry=RetryConfig(max_retries=2),
        )
    )
    await sink.ensure_setup()
    recording = _Recording(sink)
    deadletters = KafkaDeadLetterSink(services.kafka, f"{topic}-deadletter")
    await deadletters.start()
    pipeline = Pipeline(load_rules([rules_dir]), default=Ingestor(source="cloudtrail"))
    async with source:
        runner = DetectStage(source, pipeline, [recording], deadletters)
        await _run_until(runner, recording.event)
    await deadletters.close()
    await recording.close()
    return recording


async def test_cloudtrail_record_becomes_one_alert_even_when_replayed(
    services: Any, search: httpx.AsyncClient, topic: str, tmp_path: Path
) -> None:
    """A CloudTrail record on Kafka yields one alert in the search engine, the offset is
    committed only after indexing, and re-consuming from the old offset adds no duplicate."""
    (tmp_path / "rule.yml").write_text(RULE)
    group = f"e2e-{uuid.uuid4().hex[:8]}"
    index = f"e2e-alerts-{uuid.uuid4().hex[:8]}"
    await _produce(services.kafka, topic, orjson.dumps(RECORD))

    first = await _one_run(services, tmp_path, topic, group, index)
    assert first.written == 1
    assert await _committed(services.kafka, group, topic) == 1

    await search.post(f"/{index}/_refresh")
    hits = (await search.post(f"/{index}/_search", json={"query": {"match_all": {}}})).json()
    docs = [h["_source"] for h in hits["hits"]["hits"]]
    assert len(docs) == 1
    alert = docs[0]
    assert alert["event"]["kind"] == "alert"
    assert alert["rule"]["id"] == "6f7a1d4e-2b1c-4c55-9d51-0c4a3f1e9b21"
    assert alert["event"]["reference"] == [RECORD["eventID"]]
    assert alert["user"]["name"] == "ci-bot"
    assert alert["kibana"]["alert"]["severity"] == "high"
    first_id = hits["hits"]["hits"][0]["_id"]

    await _rewind(services.kafka, group, topic)
    second = await _one_run(services, tmp_path, topic, group, index)
    assert second.written == 1  # the alert was produced again ...
    await search.post(f"/{index}/_refresh")
    again = (await search.post(f"/{index}/_search", json={"query": {"match_all": {}}})).json()
    assert [h["_id"] for h in again["hits"]["hits"]] == [first_id]  # ... but stored once
    assert await _committed(services.kafka, group, topic) == 1


async def test_poison_record_goes_to_dead_letter_topic_and_pipeline_continues(
    services: Any, topic: str, tmp_path: Path
) -> None:
    """Invalid JSON is dead-lettered byte-exact with stage and reason headers, and the valid
    record behind it still produces its alert."""
    (tmp_path / "rule.yml").write_text(RULE)
    group = f"e2e-{uuid.uuid4().hex[:8]}"
    index = f"e2e-alerts-{uuid.uuid4().hex[:8]}"
    poison = b'{"eventName": "BatchGetImage", '
    await _produce(services.kafka, topic, poison)
    await _produce(services.kafka, topic, orjson.dumps(RECORD))

    run = await _one_run(services, tmp_path, topic, group, index)
    assert run.written == 1
    assert await _committed(services.kafka, group, topic) == 2

    consumer = AIOKafkaConsumer(
        f"{topic}-deadletter",
        bootstrap_servers=services.kafka,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    headers = {k: v.decode() for k, v in msg.headers}
    assert msg.value == poison
    assert headers["detector.stage"] == "decode"
    assert headers["detector.reason"] == "invalid_json"
    assert headers["detector.origin.topic"] == topic
    assert headers["detector.origin.offset"] == "0"


async def test_stop_during_a_sink_outage_leaves_the_batch_uncommitted_for_the_next_run(
    services: Any, topic: str, tmp_path: Path
) -> None:
    """The search engine answers 503 to every write; a stop requested meanwhile ends the run
    without waiting for the sink and without committing the batch. The next run, with the
    sink back, reads the record again and stores its alert; only then is it committed."""
    (tmp_path / "rule.yml").write_text(RULE)
    group = f"e2e-{uuid.uuid4().hex[:8]}"
    index = f"e2e-alerts-{uuid.uuid4().hex[:8]}"
    await _produce(services.kafka, topic, orjson.dumps(RECORD))

    source = KafkaSource(
        KafkaSourceConfig(
            bootstrap_servers=services.kafka, group_id=group, topics=[topic], poll_timeout_ms=200
        )
    )
    deadletters = KafkaDeadLetterSink(services.kafka, f"{topic}-deadletter")
    await deadletters.start()
    pipeline = Pipeline(load_rules([tmp_path]), default=Ingestor(source="cloudtrail"))
    with ScriptedServer([Reply(503, {"error": "unavailable"})]).running() as down:
        sink = OpenSearchSink(
            OpenSearchSinkConfig(hosts=[down.url], index=index, retry=RetryConfig(max_retries=0))
        )
        async with source:
            runner = DetectStage(source, pipeline, [sink], deadletters)
            task = asyncio.create_task(runner.run())
            try:

                async def retried() -> bool:  # refused, then retried: waiting out the outage
                    return sum(r.path.endswith("/_bulk") for r in down.requests) >= 2

                await _until(retried, 30, "the runner never retried the refused bulk write")
            finally:
                runner.stop()
                await asyncio.wait_for(task, 30)
        await sink.close()
    await deadletters.close()
    assert runner.batches == 0
    assert await _committed(services.kafka, group, topic) is None

    again = await _one_run(services, tmp_path, topic, group, index)
    assert again.written == 1
    assert await _committed(services.kafka, group, topic) == 1
