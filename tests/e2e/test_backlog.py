"""A backlog drained by `detector run` gives replay's alerts: nothing too late.

Three source topics of very different density share the runtime: a dense CloudTrail
topic (thousands of records per hour), a sparse audit topic (a few records per day) and
an hourly job, over several days of event time. Everything is produced before the
detector starts, as after downtime. One member, then two members, drain it: the stored
correlation and first-seen alerts equal what `detector replay` writes for the same records
(ids and content), and no match is too late.

Also a measuring tool (the figures of issue 9), printing the late and too-late counts::

    .venv/bin/python tests/e2e/test_backlog.py --dense-per-hour 4000 --days 3 --partitions 6
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from detector.app.ingest import Ingestor
from detector.app.metrics import REGISTRY
from detector.app.replay import replay
from detector.app.service import Service
from detector.app.settings import DetectorSettings, KafkaConfig, load_settings
from detector.detect import load_rules

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)

RULES = """
title: Backlog secret read
id: 6b000000-0000-4000-8000-000000000001
name: backlog_read
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: GetSecretValue}
  condition: sel
level: low
---
title: Backlog secret list
id: 6b000000-0000-4000-8000-000000000002
name: backlog_list
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: ListSecrets}
  condition: sel
level: low
---
title: Backlog read from a new address
id: 6b000000-0000-4000-8000-000000000003
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: GetSecretValue}
  condition: sel
first_seen:
  fields: [sourceIPAddress]
  group-by: [userIdentity.userName]
  timespan: 1d
level: medium
---
title: Backlog read burst
id: 6b000000-0000-4000-8000-000000000004
status: test
correlation:
  type: event_count
  rules: [backlog_read]
  group-by: [userIdentity.userName]
  timespan: 2m
  condition: {gte: 4}
level: high
---
title: Backlog list then read
id: 6b000000-0000-4000-8000-000000000005
status: test
correlation:
  type: temporal_ordered
  rules: [backlog_list, backlog_read]
  group-by: [userIdentity.userName]
  timespan: 30m
level: medium
"""

#: Fields of a stored alert that must equal replay's.
COMPARED = ("kibana.alert.start", "kibana.alert.end", "kibana.alert.reason", "event.reference")


def _record(when: datetime, user: str, op: str, ip: str, n: int) -> bytes:
    return orjson.dumps(
        {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333"},
            "eventTime": when.isoformat().replace("+00:00", "Z"),
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": op,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": ip,
            "requestParameters": {"secretId": f"prod/secret-{n % 7}"},
            "eventID": f"bk-{op}-{user}-{n}",
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
        }
    )


@dataclass
class Backlog:
    """Records per topic as ``(partition, value)``, each partition in event-time order."""

    topics: dict[str, list[tuple[int, bytes]]]
    partitions: dict[str, int]

    @classmethod
    def build(
        cls, tag: str, *, dense_per_hour: int, days: int, partitions: int, seed: int
    ) -> Backlog:
        """Dense reads by 30 users (one partition per user, bursts now and then), a few
        lists a day, one read an hour by a job whose address changes daily."""
        rng = random.Random(seed)
        hours = days * 24
        dense, sparse, hourly = f"bk-dense-{tag}", f"bk-sparse-{tag}", f"bk-hourly-{tag}"
        users = [f"user{u}" for u in range(30)]
        rows: list[tuple[float, int, bytes]] = []
        total = dense_per_hour * hours
        for n in range(total):
            seconds = n * 3600.0 / dense_per_hour
            user = users[rng.randrange(len(users))]
            ip = f"10.0.{rng.randrange(4)}.{rng.randrange(3)}"
            rows.append(
                (
                    seconds,
                    users.index(user) % partitions,
                    _record(T0 + timedelta(seconds=seconds), user, "GetSecretValue", ip, n),
                )
            )
        rows.sort(key=lambda r: r[0])
        sparse_rows = []
        for day in range(days):
            for k in range(3):
                seconds = day * 86400 + rng.randrange(86400)
                user = users[rng.randrange(len(users))]
                sparse_rows.append(
                    (
                        seconds,
                        0,
                        _record(
                            T0 + timedelta(seconds=seconds),
                            user,
                            "ListSecrets",
                            "192.0.2.1",
                            day * 10 + k,
                        ),
                    )
                )
        sparse_rows.sort(key=lambda r: r[0])
        hourly_rows = [
            (
                h * 3600.0,
                0,
                _record(
                    T0 + timedelta(hours=h), "job", "GetSecretValue", f"203.0.113.{h // 24}", h
                ),
            )
            for h in range(hours)
        ]
        return cls(
            topics={
                dense: [(p, v) for _, p, v in rows],
                sparse: [(p, v) for _, p, v in sparse_rows],
                hourly: [(p, v) for _, p, v in hourly_rows],
            },
            partitions={dense: partitions, sparse: 1, hourly: 1},
        )

    @property
    def records(self) -> int:
        return sum(map(len, self.topics.values()))

    async def produce(self, kafka: str) -> None:
        """Create the topics and produce every record, in order per partition."""
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, self.partitions[t], 1) for t in self.topics])
        finally:
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=20)
        await producer.start()
        try:
            for topic, rows in self.topics.items():
                futures = [await producer.send(topic, v, partition=p) for p, v in rows]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()

    def replayed(self, folder: Path) -> list[dict[str, Any]]:
        """``detector replay`` over the same records: its alert documents."""
        rules = load_rules([_rules(folder)])
        files = []
        for topic, rows in self.topics.items():
            path = folder / f"{topic}.jsonl"
            path.write_bytes(b"".join(v + b"\n" for _, v in rows))
            files.append(path)
        result = replay(files, rules, Ingestor(source="cloudtrail"))
        assert result.too_late_events == 0
        return [a.to_document() for a in result.alerts]


def _rules(folder: Path) -> Path:
    path = folder / "backlog-rules.yml"
    path.write_text(RULES)
    return path


def settings(
    kafka: str, search_url: str, backlog: Backlog, folder: Path, tag: str
) -> DetectorSettings:
    """One detector deployment of the backlog (its own groups, internal topics, index)."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka,
        "topics": list(backlog.topics),
        "topic_formats": {t: {"source": "cloudtrail"} for t in backlog.topics},
        "group_id": f"bk-detect-{tag}",
        "correlate_group_id": f"bk-correlate-{tag}",
        "matches_topic": f"bk-matches-{tag}",
        "matches_partitions": 3,
        "state_topic": f"bk-state-{tag}",
        "deadletter_topic": f"bk-dlq-{tag}",
        "poll_timeout_ms": 200,
    }
    if "source_idle_seconds" in KafkaConfig.model_fields:  # so it measures older code too
        options["source_idle_seconds"] = 2
    return load_settings(
        kafka=options,
        rules={"paths": [str(_rules(folder))]},
        sinks={"opensearch": {"hosts": [search_url], "index": f"bk-alerts-{tag}"}},
        health={"enabled": False},
    )


async def stored(search_url: str, index: str) -> list[dict[str, Any]]:
    """Every alert document in ``index``."""
    async with httpx.AsyncClient(base_url=search_url, timeout=30) as client:
        await client.post(f"/{index}/_refresh")
        found = await client.post(
            f"/{index}/_search", json={"size": 10_000, "query": {"match_all": {}}}
        )
        if found.status_code == 404:
            return []
        return [h["_source"] for h in found.json()["hits"]["hits"]]


def _counter(name: str) -> float:
    return sum(s.value for m in REGISTRY.collect() for s in m.samples if s.name == f"{name}_total")


def _field(doc: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        doc = doc.get(part) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return doc


def _view(doc: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(_field(doc, f) for f in COMPARED)


@dataclass
class Drained:
    """What a drain stored and counted."""

    stored: list[dict[str, Any]]
    late: float
    too_late: float
    seconds: float


async def drain(
    settings_: DetectorSettings, members: int, expected: int, limit: float, quiet: float = 300
) -> Drained:
    """Run ``members`` processes' worth of services until ``expected`` alerts are stored and
    nothing more arrives for a few seconds, nothing arrives for ``quiet`` seconds, or
    ``limit``."""
    late, too_late = _counter("detector_late_events"), _counter("detector_too_late_events")
    started = time.monotonic()
    services = [Service(settings_) for _ in range(members)]
    tasks = [asyncio.create_task(s.run()) for s in services]
    search = settings_.sinks.opensearch
    assert search is not None
    index = search.index
    try:
        last, steady = -1, 0.0
        while time.monotonic() - started < limit:
            await asyncio.sleep(1)
            for task in tasks:
                if task.done():
                    task.result()
            count = len(await stored(search.hosts[0], index))
            if count != last:
                last, steady = count, time.monotonic()
            elif time.monotonic() - steady > (5 if count >= expected else quiet):
                break  # complete, or nothing new for ``quiet`` seconds
        seconds = time.monotonic() - started
    finally:
        for service in services:
            service.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)
    return Drained(
        stored=await stored(search.hosts[0], index),
        late=_counter("detector_late_events") - late,
        too_late=_counter("detector_too_late_events") - too_late,
        seconds=seconds,
    )


@pytest.mark.services
@pytest.mark.parametrize("members", [1, 2])
async def test_backlog_of_dense_sparse_and_hourly_topics_drains_to_replays_alerts(
    services: Any, tmp_path: Path, members: int
) -> None:
    """A 3-day backlog (500 reads an hour on three partitions, three lists a day, one job
    an hour) produced before the detector starts, drained by one member and by two: the
    stored alerts are replay's, ids and content, none twice, and nothing is too late."""
    tag = uuid.uuid4().hex[:8]
    backlog = Backlog.build(tag, dense_per_hour=500, days=3, partitions=3, seed=9)
    expected = backlog.replayed(tmp_path)
    assert {d["rule"]["id"][-1] for d in expected} == {"3", "4", "5"}  # every rule type fires
    await backlog.produce(services.kafka)
    result = await drain(
        settings(services.kafka, services.search_url, backlog, tmp_path, tag),
        members,
        len(expected),
        limit=600,
    )
    got = {d["event"]["id"]: _view(d) for d in result.stored}
    want = {d["event"]["id"]: _view(d) for d in expected}
    assert len(result.stored) == len(got)  # none twice
    assert set(got) == set(want), (len(set(want) - set(got)), len(set(got) - set(want)))
    assert got == want
    assert result.too_late == 0


def main(argv: list[str] | None = None) -> None:
    """Measure a drain: records, alerts stored vs replay, late and too-late counts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dense-per-hour", type=int, default=4000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from conftest import _read_env_file  # noqa: PLC0415

    env = _read_env_file()
    kafka, search_url = env["DETECTOR_TEST_KAFKA"], env["DETECTOR_TEST_SEARCH_URL"]
    tag = uuid.uuid4().hex[:8]
    backlog = Backlog.build(
        tag,
        dense_per_hour=args.dense_per_hour,
        days=args.days,
        partitions=args.partitions,
        seed=args.seed,
    )
    folder = Path(tempfile.mkdtemp(prefix="backlog-"))
    expected = backlog.replayed(folder)

    async def run() -> Drained:
        await backlog.produce(kafka)
        config = settings(kafka, search_url, backlog, folder, tag)
        return await drain(config, args.members, len(expected), 1800, quiet=60)

    result = asyncio.run(run())
    want = {d["event"]["id"] for d in expected}
    got = {d["event"]["id"] for d in result.stored}
    print(
        f"records={backlog.records} expected_alerts={len(want)} stored={len(result.stored)} "
        f"missing={len(want - got)} extra={len(got - want)} late={result.late:.0f} "
        f"too_late={result.too_late:.0f} seconds={result.seconds:.0f}"
    )


if __name__ == "__main__":
    main()
