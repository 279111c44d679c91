"""Streaming equals replay under faults: kill -9 of members, a broker restart, a sink outage.

Two ``detector run --stage detect`` and two ``--stage correlate`` processes drain the
backlog generator's three source topics (correlation and first-seen hits on several
partitions; all produced before they start, so no source is idle while it has records)
while faults are injected at seeded random points: kill -9 of members (each restarted
once it is working), kill -9 and restart of the broker, a search engine outage of about
20 s behind a loopback proxy, with a correlate member killed and started during it.
Afterwards every offset is committed and the stored alerts are those of ``detector
replay`` over the same records: ids and content, none twice, nothing extra, no dead letter.

Run alone with ``.venv/bin/pytest tests/chaos -s`` to see the summary line; the seed is
``DETECTOR_CHAOS_SEED`` (default 9).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import test_startup_outage
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from test_backlog import Backlog, _field, _rules, _view, stored
from test_correlate_outage import SearchProxy

ROOT = Path(__file__).parents[2]
SEED = int(os.environ.get("DETECTOR_CHAOS_SEED", "9"))
OUTAGE_SECONDS = 20.0
proxy = test_startup_outage.proxy  # the fixture: the search engine behind a failing proxy
#: Bound of the final drain (a loaded machine is slow; no assertion is made on time).
DRAIN_LIMIT = 900.0
#: All committed and no new alert for this long: the drain is over, complete or not.
QUIET = 90.0


@dataclass
class Members:
    """The ``detector run`` processes of one deployment, restartable by name."""

    config: Path
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: Counter[str] = field(default_factory=Counter)

    def start(self, name: str) -> None:
        """Start member ``name`` (``detect-…`` or ``correlate-…``); its log is kept."""
        self.starts[name] += 1
        log = (self.logs / f"{name}-{self.starts[name]}.log").open("wb")
        exe = Path(sys.executable).with_name("detector")
        stage = name.split("-", maxsplit=1)[0]
        self.procs[name] = subprocess.Popen(
            [str(exe), "run", "--config", str(self.config), "--stage", stage],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def log(self, name: str) -> Path:
        """The log of the latest start of member ``name``."""
        return self.logs / f"{name}-{self.starts[name]}.log"

    async def running(self, limit: float = 300) -> None:
        """Wait until every member has started its stage (a kill must hit a working
        member, and the member started during the outage must get through it)."""
        deadline = time.monotonic() + limit
        while not all(b'"detector_started"' in self.log(n).read_bytes() for n in self.procs):
            self.check()
            assert time.monotonic() < deadline, f"members did not start within {limit} s"
            await asyncio.sleep(0.5)

    def kill(self, name: str) -> None:
        """kill -9 member ``name`` and reap it."""
        proc = self.procs[name]
        proc.kill()
        proc.wait(30)

    def check(self) -> None:
        """Fail with the log of a member that exited on its own."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self.log(name).read_text(errors="replace")[-3000:]
                raise AssertionError(f"member {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM every member, then kill -9 what is still running after 60 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)


class Broker:
    """The local broker of ``scripts/services``: kill -9 by its pid file, start again."""

    def __init__(self, kafka: str, search_url: str) -> None:
        state = Path(os.environ.get("DETECTOR_SERVICES_DIR", ROOT / ".services"))
        self.pidfile = state / "kafka.pid"
        self.env = {
            **os.environ,
            "DETECTOR_KAFKA_PORT": kafka.rsplit(":", 1)[1],
            "DETECTOR_SEARCH_PORT": str(urlsplit(search_url).port),
        }

    def kill(self) -> None:
        """kill -9 the broker process."""
        if not self.pidfile.is_file():
            pytest.fail(f"no {self.pidfile}: the broker must be started by scripts/services up")
        os.kill(int(self.pidfile.read_text().strip()), signal.SIGKILL)

    def start(self) -> None:
        """Start the broker again (``up`` leaves the running search engine as it is)."""
        subprocess.run(
            [str(ROOT / "scripts" / "services"), "up"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=600,
        )


def _config(folder: Path, backlog: Backlog, kafka: str, sink: str, tag: str) -> Path:
    """The members' YAML settings: short source idleness, every alert through ``sink``."""
    path = folder / "chaos.yml"
    settings = {
        "kafka": {
            "bootstrap_servers": kafka,
            "topics": list(backlog.topics),
            "topic_formats": {t: {"source": "cloudtrail"} for t in backlog.topics},
            "group_id": f"chaos-detect-{tag}",
            "correlate_group_id": f"chaos-correlate-{tag}",
            "matches_topic": f"chaos-matches-{tag}",
            "matches_partitions": 3,
            "state_topic": f"chaos-state-{tag}",
            "deadletter_topic": f"chaos-dlq-{tag}",
            "poll_timeout_ms": 200,
            "source_idle_seconds": 2,
        },
        "rules": {"paths": [str(_rules(folder))]},
        "sinks": {"opensearch": {"hosts": [sink], "index": f"chaos-alerts-{tag}"}},
        "health": {"enabled": False},
    }
    path.write_bytes(orjson.dumps(settings))  # JSON is YAML
    return path


async def _create(kafka: str, backlog: Backlog) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, backlog.partitions[t], 1) for t in backlog.topics])
    finally:
        await admin.close()


async def _lag(kafka: str, group: str, topics: dict[str, int]) -> int:
    """Records of ``topics`` (name: partitions) not yet committed by ``group`` (0: none)."""
    probe = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    member = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await probe.start()
    await member.start()
    try:
        tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        ends = await probe.end_offsets(tps)
        committed = [(await member.committed(tp)) or 0 for tp in tps]
        return sum(ends[tp] - done for tp, done in zip(tps, committed, strict=True))
    finally:
        await member.stop()
        await probe.stop()


async def _records(kafka: str, topic: str) -> int:
    """How many records ``topic`` holds (0 when it does not exist)."""
    probe = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None)
    await probe.start()
    try:
        if topic not in await probe.topics():
            return 0
        parts = probe.partitions_for_topic(topic) or set()
        ends = await probe.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        await probe.stop()


@pytest.mark.services
async def test_two_detect_and_two_correlate_members_under_faults_store_replays_alerts(
    services: Any, tmp_path: Path, proxy: SearchProxy
) -> None:
    """Under kill -9 of members, a broker kill -9 and restart, a 20 s search outage and a
    member started during it, the stored alerts equal replay's (ids, start, end, reason,
    references, counts), none is stored twice or extra, every offset is committed and no
    record is dead-lettered."""
    rng = random.Random(SEED)
    tag = uuid.uuid4().hex[:8]
    backlog = Backlog.build(tag, dense_per_hour=400, days=3, partitions=3, seed=SEED)
    expected = backlog.replayed(tmp_path)
    assert {d["rule"]["id"][-1] for d in expected} == {"3", "4", "5"}  # every rule type fires
    kafka = services.kafka
    config = _config(tmp_path, backlog, kafka, proxy.url, tag)
    (tmp_path / "logs").mkdir()
    members = Members(config, tmp_path / "logs")
    broker = Broker(kafka, services.search_url)
    names = ["detect-a", "detect-b", "correlate-a", "correlate-b"]
    kills: list[str] = []
    outage = 0.0
    during_outage = ""
    started = time.monotonic()

    async def kill_one(among: list[str]) -> str:
        name = rng.choice(among)
        members.check()
        members.kill(name)
        kills.append(name)
        return name

    await backlog.produce(kafka)  # all in before the members start: no source is idle early
    try:
        for name in names:
            members.start(name)
        for step in ("kill", "kill", "broker", "outage", "kill"):
            await members.running()
            await asyncio.sleep(rng.uniform(0.5, 6))
            if step == "broker":  # kill -9, down a moment, started again
                broker.kill()
                await asyncio.sleep(rng.uniform(1, 5))
                await asyncio.to_thread(broker.start)
            elif step == "outage":  # with a correlate member killed and started during it
                proxy.down = True
                down = time.monotonic()
                await asyncio.sleep(rng.uniform(2, 6))
                during_outage = await kill_one(names[2:])
                members.start(during_outage)
                await asyncio.sleep(OUTAGE_SECONDS - (time.monotonic() - down))
                proxy.down = False
                outage = time.monotonic() - down
            else:
                members.start(await kill_one(names))

        index = f"chaos-alerts-{tag}"
        groups = [
            (f"chaos-detect-{tag}", backlog.partitions),
            (f"chaos-correlate-{tag}", {f"chaos-matches-{tag}": 3}),
        ]
        deadline = time.monotonic() + DRAIN_LIMIT
        last, steady = -1, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(2)
            members.check()
            count = len(await stored(services.search_url, index))
            lags = [await _lag(kafka, g, t) for g, t in groups]
            if count != last or any(lags):
                last, steady = count, time.monotonic()
            elif time.monotonic() - steady > (6 if count >= len(expected) else QUIET):
                break  # all committed and complete, or nothing more for QUIET seconds
        got_docs = await stored(services.search_url, index)
        dead = await _records(kafka, f"chaos-dlq-{tag}")
    finally:
        members.stop()
        proxy.down = False
    seconds = time.monotonic() - started

    def view(doc: dict[str, Any]) -> tuple[Any, ...]:
        return (*_view(doc), _field(doc, "kibana.alert.event_count"))

    got = {d["event"]["id"]: view(d) for d in got_docs}
    want = {d["event"]["id"]: view(d) for d in expected}
    missing, extra = set(want) - set(got), set(got) - set(want)
    print(
        f"chaos seed={SEED}: kills={len(kills)} ({', '.join(kills)}) broker_restarts=1 "
        f"outage_seconds={outage:.0f} started_during_outage={during_outage} "
        f"records={backlog.records} expected={len(want)} stored={len(got_docs)} "
        f"missing={len(missing)} extra={len(extra)} dead_letters={dead} seconds={seconds:.0f}"
    )
    assert lags == [0, 0], f"uncommitted records (detect, correlate): {lags}"
    assert len(got_docs) == len(got)  # none twice
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    differing = {i for i in want if got[i] != want[i]}
    assert not differing, [(want[i], got[i]) for i in sorted(differing)[:3]]
    assert dead == 0
