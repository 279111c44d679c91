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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

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


def _service_env(services: Any, tmp_path: Path) -> tuple[str, str, int, dict[str, str]]:
    """A topic, an alert index, a free health port and the ``DETECTOR_*`` environment of a
    ``detector run`` over them with :data:`RULE`."""
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
    return topic, index, port, env


def _indexed(services: Any, index: str, expected: int) -> Callable[[], bool]:
    def indexed() -> bool:
        httpx.post(f"{services.search_url}/{index}/_refresh")
        count = httpx.get(f"{services.search_url}/{index}/_count").json().get("count", 0)
        return bool(count == expected)

    return indexed


@pytest.mark.services
async def _produce(
    bootstrap: str,
    topic: str,
    records: list[dict[str, Any]],
    partitions: int = 1,
    *,
    create: bool = True,
) -> None:
    if partitions > 1 and create:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n, record in enumerate(records):
            partition = n % partitions if partitions > 1 else None
            await producer.send_and_wait(topic, orjson.dumps(record), partition=partition)
    finally:
        await producer.stop()


def test_detector_run_process_indexes_alerts_serves_health_and_drains_on_sigterm(
    services: Any, tmp_path: Path
) -> None:
    """The console command configured only by DETECTOR_* variables consumes, indexes the
    alerts, reports ready and metrics over HTTP, and exits 0 after SIGTERM."""
    topic, index, port, env = _service_env(services, tmp_path)
    asyncio.run(_produce(services.kafka, topic, [_record(n) for n in range(3)]))

    exe = Path(sys.executable).with_name("detector")
    proc = subprocess.Popen([str(exe), "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(lambda: httpx.get(f"{base}/readyz").status_code == 200)
        _wait(_indexed(services, index, 3))
        assert httpx.get(f"{base}/healthz").status_code == 200
        metrics = httpx.get(f"{base}/metrics").text
        assert 'detector_alerts_total{rule_id="0c0a9a57-8d0e-4d55-a7a4-4d3b1c0ffee1"' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert '"event": "detector_stopped"' in stderr


def _records_consumed(port: int) -> float:
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("detector_records_total{")
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (exited, not yet reaped by its parent) is gone too
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


def _worker_pid(port: int) -> int:
    """The process listening on ``port`` (read from /proc: no tool needed)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                inodes.add(fields[9])
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                for fd in (entry / "fd").iterdir():
                    if os.readlink(fd).removeprefix("socket:[").rstrip("]") in inodes:
                        return int(entry.name)
            except OSError:
                continue
    raise AssertionError(f"no process listens on {port}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_detector_run_workers_share_the_work_and_stop_with_their_supervisor(
    services: Any, tmp_path: Path
) -> None:
    """``--workers 2`` runs two processes that each consume part of a 4-partition topic
    (health on the port and the next one), together index every alert once, and drain
    and exit 0 on the supervisor's SIGTERM; the supervisor is ready only while its worker
    is; a worker whose supervisor is killed with SIGKILL stops too instead of consuming
    on as an orphan."""
    topic, index, port, env = _service_env(services, tmp_path)
    asyncio.run(_produce(services.kafka, topic, [], partitions=4))

    exe = Path(sys.executable).with_name("detector")
    proc = subprocess.Popen(
        [str(exe), "run", "--workers", "2"], env=env, stderr=subprocess.PIPE, text=True
    )
    produced = 0
    try:
        for worker in (port, port + 1):
            _wait(lambda w=worker: httpx.get(f"http://127.0.0.1:{w}/readyz").status_code == 200)

        def both_consume() -> bool:
            # a record per partition until the group settled with work for both workers
            nonlocal produced
            records = [_record(n) for n in range(produced, produced + 4)]
            asyncio.run(_produce(services.kafka, topic, records, partitions=4, create=False))
            produced += len(records)
            return all(_records_consumed(w) for w in (port, port + 1))

        _wait(both_consume)
        _wait(_indexed(services, index, produced))
        # at least once: a rebalance may hand a partition over before its batch committed
        assert _records_consumed(port) + _records_consumed(port + 1) >= produced
        child = _worker_pid(port + 1)
        assert child != proc.pid
        # the supervisor's readiness is every worker's: a frozen worker makes it unready
        parent_ready = f"http://127.0.0.1:{port}/readyz"
        _wait(lambda: httpx.get(parent_ready).status_code == 200)
        os.kill(child, signal.SIGSTOP)
        try:
            _wait(lambda: httpx.get(parent_ready).status_code == 503, timeout=20)
        finally:
            os.kill(child, signal.SIGCONT)
        _wait(lambda: httpx.get(parent_ready).status_code == 200, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert stderr.count('"event": "detector_stopped"') == 2, stderr[-2000:]
    _wait(lambda: _gone(child), timeout=10)

    killed = subprocess.Popen([str(exe), "run", "--workers", "2"], env=env)
    try:
        _wait(lambda: httpx.get(f"http://127.0.0.1:{port + 1}/readyz").status_code == 200)
        child = _worker_pid(port + 1)
    finally:
        killed.kill()
        killed.wait()
    _wait(lambda: _gone(child), timeout=70)


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
