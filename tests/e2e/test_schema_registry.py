"""Confluent-framed Avro on the real broker, schema ids resolved by a registry that blinks.

``detector run`` reads a topic of Avro records whose schema ids ``schemas/registry.yaml``
does not list; a loopback Confluent-compatible registry answers them after an outage.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from registry_support import FakeRegistry
from test_kafka_security import run_config, run_to_exit, wait_for
from test_service_process import _record

from detector.app.ingest import load_schemas
from detector.decode import encode_confluent
from detector.sources.kafka import KafkaSource, KafkaSourceConfig

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    config = KafkaSourceConfig(
        bootstrap_servers=bootstrap, topics=[topic], group_id=f"read-{uuid.uuid4().hex[:8]}"
    )
    got: list[bytes] = []
    async with KafkaSource(config) as source:
        async for batch in source.batches():
            got += [record.value for record in batch]
            if len(got) >= count:
                source.stop()
    return got


def test_unknown_ids_resolve_through_the_registry_after_an_outage(
    services: object, tmp_path: Path
) -> None:
    """Records with ids only the registry knows are decoded and alerted on although the
    registry first answers 503 (the batch waits, nothing is dead-lettered); only the record
    whose id the registry does not hold (404, code 40403) is dead-lettered."""
    store = load_schemas(ROOT / "schemas")
    cloudtrail = store.latest("cloudtrail")
    kafka = services.kafka
    topic = f"avro-ct-{uuid.uuid4().hex[:8]}"
    good = [encode_confluent(_record(n), cloudtrail, 1001) for n in range(2)]
    unknown = encode_confluent(_record(9), cloudtrail, 4242)
    asyncio.run(_produce(kafka, topic, [*good, unknown]))

    alerts = tmp_path / "alerts.jsonl"
    with FakeRegistry({1001: dict(cloudtrail.definition)}, outage=3).running() as registry:
        kafka_settings = {
            "bootstrap_servers": kafka,
            "topic_formats": {topic: {"source": "cloudtrail", "format": "avro"}},
        }
        decode = {
            "schemas_dir": str(ROOT / "schemas"),
            "schema_registry": {"url": registry.url, "username": "k", "password": "s"},
        }
        config = run_config(tmp_path, kafka_settings, topic, decode)
        exe = Path(sys.executable).with_name("detector")
        proc = subprocess.Popen(
            [str(exe), "run", "--config", str(config)],
            env=dict(os.environ),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(lambda: alerts.is_file() and len(alerts.read_text().splitlines()) >= 2, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    assert len(alerts.read_text().splitlines()) == 2
    assert registry.failures == 3
    assert '"sink": "schema_registry"' in stderr  # the batch waited for the registry
    dead = asyncio.run(_read(kafka, f"{topic}-dlq", 1))
    assert dead == [unknown]
    assert sorted(set(registry.paths)) == [
        "/schemas/ids/1001",
        "/schemas/ids/4242",
        "/schemas/types",  # the start-up check
    ]


def test_refused_registry_credentials_stop_detector_run_with_exit_2(
    services: object, tmp_path: Path
) -> None:
    """A registry that refuses the configured token stops ``detector run`` at start-up with
    status 2, naming the setting to fix and printing no token."""
    kafka = services.kafka
    topic = f"avro-auth-{uuid.uuid4().hex[:8]}"
    with FakeRegistry({}, authorization="Bearer the-right-token").running() as registry:
        config = run_config(
            tmp_path,
            {
                "bootstrap_servers": kafka,
                "topic_formats": {topic: {"source": "cloudtrail", "format": "avro"}},
            },
            topic,
            {
                "schemas_dir": str(ROOT / "schemas"),
                "schema_registry": {"url": registry.url, "bearer_token": "a-wrong-token"},
            },
        )
        proc = run_to_exit(config)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "refused the credentials (HTTP 401)" in proc.stderr
    assert "decode.schema_registry.username/password or bearer_token" in proc.stderr
    assert "a-wrong-token" not in proc.stdout + proc.stderr
