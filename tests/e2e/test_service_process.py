"""``detector run`` as a real process: env config, Kafka in, OpenSearch out, health, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

RULE = """
title: Secrets Manager secret read from outside the organisation
id: 0c0a9a57-8d0e-4d55-a7a4-4d3b1c0ffee1
status: test
description: Test rule for the service process test.
author: detector project
date: 2026-11-28
tags: [attack.credential-access, attack.t1555]
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventSource: secretsmanager.amazonaws.com
    eventName: GetSecretValue
  condition: selection
falsepositives: [Applications reading their own secrets]
level: medium
"""


def _record(n: int) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": "deployer", "accountId": "111122223333"},
        "eventTime": f"2026-11-28T10:00:{n:02d}Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "requestParameters": {"secretId": f"prod/db/password-{n}"},
        "eventID": f"7d0b6c3e-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("condition not reached in time")


@pytest.mark.services
async def _produce(bootstrap: str, topic: str, records: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(topic, orjson.dumps(record))
    finally:
        await producer.stop()


def test_detector_run_process_indexes_alerts_serves_health_and_drains_on_sigterm(
    services: Any, tmp_path: Path
) -> None:
    """The console command configured only by DETECTOR_* variables consumes, indexes the
    alerts, reports ready and metrics over HTTP, and exits 0 after SIGTERM."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rule.yml").write_text(RULE)
    topic = f"svc-cloudtrail-{uuid.uuid4().hex[:8]}"
    index = f"svc-alerts-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {
        **os.environ,
        "DETECTOR_KAFKA__BOOTSTRAP_SERVERS": services.kafka,
        "DETECTOR_KAFKA__TOPICS": orjson.dumps([topic]).decode(),
        "DETECTOR_KAFKA__GROUP_ID": f"svc-{uuid.uuid4().hex[:8]}",
        "DETECTOR_KAFKA__DEADLETTER_TOPIC": f"{topic}-dlq",
        "DETECTOR_RULES__PATHS": orjson.dumps([str(tmp_path / "rules")]).decode(),
        "DETECTOR_SINKS__OPENSEARCH__HOSTS": services.search_url,
        "DETECTOR_SINKS__OPENSEARCH__INDEX": index,
        "DETECTOR_HEALTH__HOST": "127.0.0.1",
        "DETECTOR_HEALTH__PORT": str(port),
    }
    asyncio.run(_produce(services.kafka, topic, [_record(n) for n in range(3)]))

    exe = Path(sys.executable).with_name("detector")
    proc = subprocess.Popen([str(exe), "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200)

        def indexed() -> bool:
            httpx.post(f"{services.search_url}/{index}/_refresh")
            count = httpx.get(f"{services.search_url}/{index}/_count").json().get("count", 0)
            return bool(count == 3)

        _wait(indexed)
        assert httpx.get(f"{base}/healthz").status_code == 200
        metrics = httpx.get(f"{base}/metrics").text
        assert 'detector_alerts_total{rule_id="0c0a9a57-8d0e-4d55-a7a4-4d3b1c0ffee1"' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert '"event": "detector_stopped"' in stderr


def test_detector_run_reports_every_config_problem_and_exits_2(tmp_path: Path) -> None:
    """Bad settings are all reported at once with the variable names to fix; exit status 2."""
    exe = Path(sys.executable).with_name("detector")
    env = {
        **os.environ,
        "DETECTOR_KAFKA__MAX_BATCH_RECORDS": "0",
        "DETECTOR_HEALTH__PORT": "99999",
    }
    proc = subprocess.run(
        [str(exe), "run"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 2
    assert "kafka.max_batch_records" in proc.stderr
    assert "health.port" in proc.stderr
