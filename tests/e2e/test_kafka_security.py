"""Kafka security on the real local broker: every listener scripts/services starts.

The broker listens with SASL_SSL (SCRAM-SHA-256/512, PLAIN, OAUTHBEARER), SSL requiring a
client certificate, and SASL_PLAINTEXT (SCRAM-SHA-256 only); the CA, the certificates and
the SCRAM password are generated at its start.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from test_service_process import RULE, _record

from detector.sources.kafka import KafkaSource, KafkaSourceConfig
from detector.sources.kafkasecurity import KafkaSecurityConfig, kafka_security
from detector.state import TopicSpec, ensure_topics

pytestmark = pytest.mark.services

DETECTOR = Path(sys.executable).with_name("detector")


class Secured:
    """The secured listeners and credentials of the running broker (from services env)."""

    def __init__(self, env: dict[str, str]) -> None:
        needed = ("DETECTOR_TEST_KAFKA_SASL_SSL", "DETECTOR_TEST_KAFKA_CA")
        missing = [k for k in needed if k not in env]
        if missing:
            pytest.fail(
                f"the broker runs without the secured listeners ({', '.join(missing)} unset): "
                "run `scripts/services up`, which restarts an outdated broker"
            )
        self.sasl_ssl = env["DETECTOR_TEST_KAFKA_SASL_SSL"]
        self.ssl = env["DETECTOR_TEST_KAFKA_SSL"]
        self.sasl_plaintext = env["DETECTOR_TEST_KAFKA_SASL_PLAINTEXT"]
        self.ca = env["DETECTOR_TEST_KAFKA_CA"]
        self.client_cert = env["DETECTOR_TEST_KAFKA_CLIENT_CERT"]
        self.client_key = env["DETECTOR_TEST_KAFKA_CLIENT_KEY"]
        self.user = env["DETECTOR_TEST_KAFKA_SASL_USER"]
        self.password_file = env["DETECTOR_TEST_KAFKA_SASL_PASSWORD_FILE"]
        self.password = Path(self.password_file).read_text().strip()

    def scram(self, mechanism: str = "SCRAM-SHA-512", **sasl: Any) -> dict[str, Any]:
        """SASL_SSL settings for the test user (``sasl`` overrides)."""
        return {
            "bootstrap_servers": self.sasl_ssl,
            "security_protocol": "SASL_SSL",
            "tls": {"ca_file": self.ca},
            "sasl": {
                "mechanism": mechanism,
                "username": self.user,
                "password_file": self.password_file,
                **sasl,
            },
        }


@pytest.fixture(scope="module")
def secured(services_env: dict[str, str]) -> Secured:
    """The secured listeners; fails when the broker was started without them."""
    return Secured(services_env)


def _unsigned_jwt(subject: str) -> str:
    """A token the broker's unsecured OAUTHBEARER validator accepts (tests only)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 3600}
    return f"{part({'alg': 'none'})}.{part(claims)}."


def _listener_settings(secured: Secured, tmp_path: Path) -> dict[str, dict[str, Any]]:
    token = tmp_path / "token"
    token.write_text(_unsigned_jwt(secured.user) + "\n")
    return {
        "SASL_SSL SCRAM-SHA-512": secured.scram("SCRAM-SHA-512"),
        "SASL_SSL SCRAM-SHA-256": secured.scram("SCRAM-SHA-256"),
        "SASL_SSL PLAIN": secured.scram("PLAIN"),
        "SASL_SSL OAUTHBEARER": {
            "bootstrap_servers": secured.sasl_ssl,
            "security_protocol": "SASL_SSL",
            "tls": {"ca_file": secured.ca},
            "sasl": {"mechanism": "OAUTHBEARER", "oauth": {"token_file": str(token)}},
        },
        "SSL mTLS": {
            "bootstrap_servers": secured.ssl,
            "security_protocol": "SSL",
            "tls": {
                "ca_file": secured.ca,
                "cert_file": secured.client_cert,
                "key_file": secured.client_key,
            },
        },
        "SASL_PLAINTEXT SCRAM-SHA-256": {
            "bootstrap_servers": secured.sasl_plaintext,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": "SCRAM-SHA-256",
                "username": secured.user,
                "password_file": secured.password_file,
            },
        },
    }


LISTENERS = [
    "SASL_SSL SCRAM-SHA-512",
    "SASL_SSL SCRAM-SHA-256",
    "SASL_SSL PLAIN",
    "SASL_SSL OAUTHBEARER",
    "SSL mTLS",
    "SASL_PLAINTEXT SCRAM-SHA-256",
]


@pytest.mark.parametrize("listener", LISTENERS)
async def test_admin_producer_and_consumer_work_on_each_secured_listener(
    secured: Secured, tmp_path: Path, listener: str
) -> None:
    """With the builder's arguments the admin client creates a topic, a producer writes to
    it and the detect-stage consumer reads the record back, on each protocol and mechanism."""
    settings = _listener_settings(secured, tmp_path)[listener]
    topic = f"sec-{uuid.uuid4().hex[:10]}"
    config = KafkaSourceConfig.model_validate(
        {**settings, "topics": [topic], "group_id": f"g-{topic}"}
    )
    security = kafka_security(KafkaSecurityConfig.model_validate(settings))
    assert topic in await ensure_topics(config.bootstrap_servers, [TopicSpec(topic, 1)], security)
    producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap_servers, **security)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"over": "' + listener.encode() + b'"}')
    finally:
        await producer.stop()
    async with KafkaSource(config, security) as source:
        got: list[bytes] = []
        async for batch in source.batches():
            got += [record.value for record in batch]
            if got:
                source.stop()
    assert got == [b'{"over": "' + listener.encode() + b'"}']


def run_config(
    tmp_path: Path, kafka: dict[str, Any], topic: str, decode: dict[str, Any] | None = None
) -> Path:
    """A ``detector run`` YAML file: ``kafka`` settings, internal topics named after
    ``topic``, the test rule, alerts to ``tmp_path/alerts.jsonl``, no health server."""
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "rule.yml").write_text(RULE)
    config = tmp_path / "detector.yaml"
    settings: dict[str, Any] = {
        "kafka": {
            "topics": [topic],
            **kafka,
            "group_id": f"g-{topic}",
            "correlate_group_id": f"c-{topic}",
            "deadletter_topic": f"{topic}-dlq",
            "matches_topic": f"{topic}-matches",
            "state_topic": f"{topic}-state",
            "matches_partitions": 1,
        },
        "rules": {"paths": [str(rules)]},
        "sinks": {"jsonl": {"path": str(tmp_path / "alerts.jsonl"), "fsync": False}},
        "health": {"enabled": False},
    }
    if decode is not None:
        settings["decode"] = decode
    config.write_text(yaml.safe_dump(settings))
    return config


def run_to_exit(config: Path) -> subprocess.CompletedProcess[str]:
    """``detector run --config config`` until it exits by itself (start-up failures)."""
    return subprocess.run(
        [str(DETECTOR), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[str]) -> None:
    """Poll ``predicate`` while ``detector run`` (``proc``) lives; fail if it exits first."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"detector run exited {proc.returncode}: {stderr[-3000:]}")
        time.sleep(0.5)
    raise AssertionError("condition not reached in time")


def test_pipeline_runs_over_sasl_ssl(secured: Secured, tmp_path: Path) -> None:
    """``detector run`` with SCRAM-SHA-512 over SASL_SSL (CA file, hostname checked, password
    from a file) creates its topics, consumes, writes the alerts, dead-letters a bad record
    through the secured producer and drains on SIGTERM: every client is secured."""
    topic = f"sasl-ct-{uuid.uuid4().hex[:8]}"
    kafka = secured.scram()
    config = run_config(tmp_path, kafka, topic)
    security = kafka_security(KafkaSecurityConfig.model_validate(kafka))

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=secured.sasl_ssl, acks="all", **security)
        await producer.start()
        try:
            for n in range(3):
                await producer.send_and_wait(topic, orjson.dumps(_record(n)))
            await producer.send_and_wait(topic, b"{not json")
        finally:
            await producer.stop()

    asyncio.run(produce())
    proc = subprocess.Popen(
        [str(DETECTOR), "run", "--config", str(config)],
        env={**os.environ, "DETECTOR_LOG__LEVEL": "info"},
        stderr=subprocess.PIPE,
        text=True,
    )
    alerts = tmp_path / "alerts.jsonl"
    try:
        wait_for(lambda: alerts.is_file() and len(alerts.read_text().splitlines()) >= 3, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]
    lines = alerts.read_text().splitlines()
    assert len(lines) == 3
    assert all("0c0a9a57-8d0e-4d55-a7a4-4d3b1c0ffee1" in line for line in lines)
    assert secured.password not in stderr

    async def dead_letters() -> list[bytes]:
        dlq = KafkaSourceConfig.model_validate(
            {**kafka, "topics": [f"{topic}-dlq"], "group_id": f"dlq-{topic}"}
        )
        async with KafkaSource(dlq, security) as source:
            got: list[bytes] = []
            async for batch in source.batches():
                got += [record.value for record in batch]
                if got:
                    source.stop()
            return got

    assert asyncio.run(dead_letters()) == [b"{not json"]


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("wrong password", "SASL SCRAM-SHA-512 authentication failed for user 'detector'"),
        ("untrusted CA", "TLS: the broker certificate is not trusted"),
        ("wrong mechanism", "SASL: the broker does not enable mechanism SCRAM-SHA-512"),
    ],
)
def test_security_failures_stop_detector_run_with_exit_2_and_the_cause(
    secured: Secured, tmp_path: Path, case: str, cause: str
) -> None:
    """A wrong password, a CA that did not sign the broker certificate (the system store
    only) and a mechanism the listener does not enable each stop ``detector run`` at
    start-up with status 2, a message naming the cause, and no secret in the output."""
    wrong = "Wrong-Passw0rd-For-Test"
    kafka = {
        "wrong password": secured.scram(password=wrong, password_file=None),
        "untrusted CA": {**secured.scram(), "tls": {}},
        "wrong mechanism": {
            "bootstrap_servers": secured.sasl_plaintext,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl": {
                "mechanism": "SCRAM-SHA-512",
                "username": secured.user,
                "password": secured.password,
            },
        },
    }[case]
    proc = run_to_exit(run_config(tmp_path, kafka, f"fail-{uuid.uuid4().hex[:8]}"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output[-3000:]
    assert cause in proc.stderr
    assert wrong not in output
    assert secured.password not in output
