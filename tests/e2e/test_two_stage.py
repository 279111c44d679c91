"""The two-stage runtime on the real services: detect -> matches topic -> correlate, with
correlation state restored from the compacted changelog topic across restarts."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from detector.app.correlator import CorrelateStage
from detector.app.metrics import REGISTRY
from detector.app.pipeline import DetectPipeline
from detector.app.service import Service, Stage
from detector.app.settings import DetectorSettings, load_settings
from detector.detect import load_rules
from detector.detect.correlation.fields import MISSING, lookup
from detector.models import (
    Event,
    LogSource,
    Match,
    MatchBatch,
    Origin,
    RawRecord,
    RoutedMatch,
    RuleInfo,
    Watermark,
    decode_matches_record,
    encode_batch,
    encode_routed,
    encode_watermark,
)
from detector.models.codec import BATCH_MAGIC, BATCH_MAGIC_V2, BATCH_MAGIC_V3
from detector.models.compression import deflate, inflate
from detector.models.serialized import ABSENT, SerializedDocument, json_default, plain
from detector.sinks.matches import record_key
from detector.state import Checkpoint, KafkaChangelogStore
from detector.state.checkpoint import decode_meta

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

BASE_RULE = """
title: Secret read ({tag})
id: {base_id}
name: secret_read_{tag}
status: test
description: Base rule of the two-stage tests.
author: detector project
date: 2026-11-28
tags: [attack.credential-access, attack.t1555]
logsource: {{product: aws, service: cloudtrail}}
detection:
  selection:
    eventSource: secretsmanager.amazonaws.com
    eventName: GetSecretValue
  condition: selection
falsepositives: [Applications reading their secrets]
level: low
"""

CORRELATION = """
---
title: Secret reads ({tag})
id: {corr_id}
status: test
description: Correlation of the two-stage tests.
author: detector project
date: 2026-11-28
tags: [attack.credential-access, attack.t1555]
correlation:
  type: event_count
  rules: [secret_read_{tag}]
  group-by: [userIdentity.userName]
  timespan: {timespan}
  condition: {{{op}: {count}}}
falsepositives: [Rotation jobs]
level: high
"""


def _record(user: str, seconds: float, n: int, name: str = "GetSecretValue") -> dict[str, Any]:
    when = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333"},
        "eventTime": when,
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": name,
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "requestParameters": {"secretId": f"prod/secret-{n}"},
        "eventID": f"{uuid.uuid4()}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }


class Scenario:
    """Unique topics, groups, index and rules of one test, and helpers around them."""

    def __init__(self, services: Any, tmp_path: Path, *, op: str, count: int, timespan: str):
        tag = uuid.uuid4().hex[:8]
        self.services = services
        self.source = f"ts-cloudtrail-{tag}"
        self.index = f"ts-alerts-{tag}"
        self.corr_id = str(uuid.uuid4())
        self.rules = tmp_path / "rules"
        self.rules.mkdir()
        self.rules.joinpath("rules.yml").write_text(
            BASE_RULE.format(tag=tag, base_id=uuid.uuid4())
            + CORRELATION.format(
                tag=tag, corr_id=self.corr_id, op=op, count=count, timespan=timespan
            )
        )
        self.tag = tag
        self.settings: DetectorSettings = load_settings(
            kafka={
                "bootstrap_servers": services.kafka,
                "topics": [self.source],
                "topic_formats": {self.source: {"source": "cloudtrail"}},
                "group_id": f"ts-detect-{tag}",
                "correlate_group_id": f"ts-correlate-{tag}",
                "matches_topic": f"ts-matches-{tag}",
                "matches_partitions": 3,
                "state_topic": f"ts-state-{tag}",
                "deadletter_topic": f"ts-dlq-{tag}",
                "poll_timeout_ms": 200,
                "source_idle_seconds": 1,
            },
            rules={"paths": [str(self.rules)]},
            sinks={"opensearch": {"hosts": [services.search_url], "index": self.index}},
            health={"enabled": False},
        )

    async def create_source(self, partitions: int) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.services.kafka)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.source, partitions, 1)])
        finally:
            await admin.close()

    async def produce(self, records: list[tuple[int, dict[str, Any]]]) -> None:
        """Produce ``(source partition, record)`` pairs, keyed differently each time."""
        producer = AIOKafkaProducer(bootstrap_servers=self.services.kafka, acks="all")
        await producer.start()
        try:
            for partition, record in records:
                await producer.send_and_wait(
                    self.source,
                    orjson.dumps(record),
                    key=uuid.uuid4().bytes,
                    partition=partition,
                )
        finally:
            await producer.stop()

    async def alerts(self) -> list[dict[str, Any]]:
        """Alert documents of the correlation rule in the search engine."""
        async with httpx.AsyncClient(base_url=self.services.search_url, timeout=10) as client:
            await client.post(f"/{self.index}/_refresh")
            found = await client.post(
                f"/{self.index}/_search",
                json={"query": {"term": {"rule.id": self.corr_id}}, "size": 100},
            )
            if found.status_code == 404:
                return []
            return [h["_source"] for h in found.json()["hits"]["hits"]]

    def alerts_delivered(self) -> float:
        """How many times the stages wrote a correlation alert to the sinks (this process)."""
        value = REGISTRY.get_sample_value(
            "detector_alerts_total", {"rule_id": self.corr_id, "severity": "high"}
        )
        return value or 0.0

    async def committed(self, group: str, topic: str, partitions: int) -> list[int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.services.kafka, group_id=group)
        await consumer.start()
        try:
            return [await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)]
        finally:
            await consumer.stop()


class Running:
    """A :class:`Service` running as a task of the test's event loop."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.task = asyncio.create_task(service.run())

    async def ready(self) -> None:
        await _until(lambda: _ready(self), 30, "service not ready")

    async def stop(self) -> None:
        self.service.stop()
        await asyncio.wait_for(self.task, 30)

    @property
    def correlator(self) -> CorrelateStage:
        assert self.service.correlator is not None
        return self.service.correlator

    def applied(self) -> int:
        return sum(s.applied for s in self.correlator.states.values())

    def duplicates(self) -> int:
        return sum(s.duplicates for s in self.correlator.states.values())


async def _ready(running: Running) -> bool:
    if running.task.done():
        running.task.result()  # surface the failure
    return running.service.health.ready


async def _until(check: Callable[[], Awaitable[bool]], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(message)


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    """Start services; every one still running at the end is stopped."""
    started: list[Running] = []

    async def _start(scenario: Scenario, stage: Stage = "all") -> Running:
        running = Running(Service(scenario.settings, stage=stage))
        started.append(running)
        await running.ready()
        return running

    yield _start
    for running in started:
        if not running.task.done():
            await running.stop()


@pytest.mark.services
async def test_events_on_three_source_partitions_fire_one_alert_with_two_detect_members(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """Four matching events of one user on three source partitions, consumed by two detect
    members of one group, are routed by group key to one correlate partition: exactly one
    alert, counting all four events."""
    sc = Scenario(services, tmp_path, op="gte", count=4, timespan="10m")
    await sc.create_source(3)
    detect_a = await start(sc, "detect")
    detect_b = await start(sc, "detect")
    correlate = await start(sc, "correlate")
    runners = [detect_a.service.runner, detect_b.service.runner]
    assert all(r is not None for r in runners)

    def owned() -> list[set[int]]:
        return [{tp.partition for tp in r.source.assignment()} for r in runners if r is not None]

    seen: list[list[set[int]]] = []

    async def both_assigned() -> bool:
        # each member owns some partitions, together all three, and the split held over
        # two checks: a rebalance still under way (the group settling after a metadata
        # change) would otherwise move every partition to one member after this point
        split = owned()
        settled = (
            all(split)
            and set().union(*split) == {0, 1, 2}
            and sum(map(len, split)) == 3
            and seen[-1:] == [split]
        )
        seen.append(split)
        if not settled:
            await asyncio.sleep(1.0)
        return bool(settled)

    await _until(both_assigned, 45, "the two detect members did not share the partitions")
    await sc.produce([(n % 3, _record("alice", 10 * n, n)) for n in range(4)])
    await sc.produce([(2, _record("bob", 5, 9))])  # another group: no alert

    async def one_alert() -> bool:
        return len(await sc.alerts()) >= 1

    await _until(one_alert, 30, "no correlation alert")
    await asyncio.sleep(1)  # anything else would have arrived by now
    alerts = await sc.alerts()
    assert len(alerts) == 1
    assert alerts[0]["kibana"]["alert"]["event_count"] == 4
    assert alerts[0]["kibana"]["alert"]["group"]["key"] == {"userIdentity.userName": "alice"}
    assert all(r is not None and r.batches > 0 for r in runners)  # both members detected
    assert correlate.applied() == 5


@pytest.mark.services
async def test_restart_restores_state_from_changelog_and_fires_once_when_rest_arrives(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """Half the events, a drained stop, a new process: the state is read back from the
    changelog, the correlation does not fire early, and fires once with all four events
    when the rest arrive; the new process re-reads no input."""
    sc = Scenario(services, tmp_path, op="gte", count=4, timespan="10m")
    await sc.create_source(3)
    first = await start(sc)
    await sc.produce([(n % 3, _record("alice", 10 * n, n)) for n in range(2)])

    async def two_applied() -> bool:
        return first.applied() == 2

    await _until(two_applied, 30, "matches did not reach the correlate stage")
    await first.stop()
    assert await sc.alerts() == []

    second = await start(sc)
    restored = {p: s.offset for p, s in second.correlator.states.items()}
    assert sum(o or 0 for o in restored.values()) > 0  # checkpoint offsets, not empty state
    await sc.produce([(n % 3, _record("alice", 10 * n, n)) for n in range(2, 4)])

    async def one_alert() -> bool:
        return len(await sc.alerts()) >= 1

    await _until(one_alert, 30, "no correlation alert after restart")
    alerts = await sc.alerts()
    assert len(alerts) == 1
    assert alerts[0]["kibana"]["alert"]["event_count"] == 4  # both halves in one window
    assert second.applied() == 2  # only the new matches: the state came from the changelog
    assert second.duplicates() == 0


@pytest.mark.services
async def test_crash_between_checkpoint_and_commit_neither_duplicates_nor_loses(
    services: Any,
    tmp_path: Path,
    start: Callable[..., Awaitable[Running]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A correlate stage that writes checkpoints but never commits (a crash right after
    every checkpoint): the next process seeks to the checkpoint offsets, so the alert that
    already fired is not written again and the half-filled second window still fires."""
    sc = Scenario(services, tmp_path, op="gte", count=4, timespan="10m")
    await sc.create_source(1)

    async def no_commit(self: CorrelateStage, offsets: Any) -> None:
        """The process dies before committing."""

    monkeypatch.setattr(CorrelateStage, "commit", no_commit)
    first = await start(sc)
    await sc.produce([(0, _record("alice", 10 * n, n)) for n in range(6)])

    async def six_applied() -> bool:
        return first.applied() == 6 and len(await sc.alerts()) == 1

    await _until(six_applied, 30, "first window did not fire")
    await first.stop()
    matches_topic = sc.settings.kafka.matches_topic
    group = sc.settings.kafka.correlate_group_id
    assert await sc.committed(group, matches_topic, 3) == [None, None, None]
    delivered = sc.alerts_delivered()
    assert delivered == 1

    monkeypatch.undo()
    second = await start(sc)
    await sc.produce([(0, _record("alice", 10 * n, n)) for n in range(6, 8)])

    async def two_alerts() -> bool:
        return len(await sc.alerts()) == 2

    await _until(two_alerts, 30, "the second window was lost")
    assert sc.alerts_delivered() == delivered + 1  # the first alert was not re-emitted
    assert second.applied() == 2 and second.duplicates() == 0
    assert sorted(a["kibana"]["alert"]["event_count"] for a in await sc.alerts()) == [4, 4]


@pytest.mark.services
async def test_watermark_heartbeats_close_a_lt_window_without_further_matches(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """An ``lt`` correlation is decided when its window closes: one match, then only a
    non-matching event five minutes later; the detect stage's heartbeat carries that event
    time to the correlate partition, whose watermark closes the window and fires."""
    sc = Scenario(services, tmp_path, op="lt", count=2, timespan="1m")
    await sc.create_source(1)
    running = await start(sc)
    await sc.produce([(0, _record("carol", 0, 1))])

    async def applied() -> bool:
        return running.applied() == 1

    await _until(applied, 30, "the match did not reach the correlate stage")
    await asyncio.sleep(1)
    assert await sc.alerts() == []  # the window is still open
    await sc.produce([(0, _record("dave", 300, 2, name="ListSecrets"))])

    async def fired() -> bool:
        return len(await sc.alerts()) == 1

    await _until(fired, 30, "the heartbeat did not close the window")
    assert running.applied() == 1  # no further match reached the stage
    alert = (await sc.alerts())[0]
    assert alert["kibana"]["alert"]["group"]["key"] == {"userIdentity.userName": "carol"}
    assert alert["kibana"]["alert"]["event_count"] == 1


@pytest.mark.services
async def test_changelog_holds_a_record_per_group_key_and_a_meta_record_with_the_offset(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """The state topic is compacted; for a partition it holds one record per open group
    key (the window's entries as JSON, keyed by section, rule and group key) and, written
    after them, the partition's meta record with the next input offset."""
    sc = Scenario(services, tmp_path, op="gte", count=4, timespan="10m")
    await sc.create_source(1)
    running = await start(sc)
    await sc.produce([(0, _record("erin", 0, 1))])

    async def applied() -> bool:
        return running.applied() == 1

    await _until(applied, 30, "the match did not reach the correlate stage")
    (partition,) = [p for p, s in running.correlator.states.items() if s.applied]
    await running.stop()

    kafka = sc.settings.kafka
    base = f"{kafka.correlate_group_id}/{kafka.matches_topic}/{partition}".encode()
    records: list[tuple[bytes, bytes | None]] = []
    store = KafkaChangelogStore(services.kafka, kafka.state_topic)
    await store.start()
    try:
        await store.replay(
            [partition],
            lambda k, v: records.append((k, v)) if k.split(b"\x00")[0] == base else None,
        )
    finally:
        await store.close()
    groups = [(k, v) for k, v in records if k != base]
    assert [k.split(b"\x00")[1:] for k, _ in groups] == [
        [f"correlation:{sc.corr_id}".encode(), sc.corr_id.encode(), b'["erin"]']
    ]
    (entries,) = [orjson.loads(v or b"null") for _, v in groups]
    assert [e[1] for e in entries] == [0]  # one entry, of the first referenced rule
    metas = [i for i, (k, _) in enumerate(records) if k == base]
    assert metas and metas[-1] > records.index(groups[-1])
    offset, meta = decode_meta(records[metas[-1]][1] or b"")
    assert offset >= 1
    assert set(meta["engines"]) >= {f"correlation:{sc.corr_id}", "first_seen"}

    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await admin.start()
    try:
        (meta,) = await admin.describe_topics([kafka.state_topic])
    finally:
        await admin.close()
    assert len(meta["partitions"]) == 3


@pytest.mark.services
async def test_undecodable_matches_record_is_dead_lettered_and_stage_continues(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """A record on the matches topic that is not a routed match goes to the dead-letter
    topic (stage ``correlate``) with its origin, and the matches behind it still count."""
    sc = Scenario(services, tmp_path, op="gte", count=1, timespan="1m")
    await sc.create_source(1)
    running = await start(sc)
    kafka = sc.settings.kafka
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(kafka.matches_topic, b"not a match", partition=1)
    finally:
        await producer.stop()
    await sc.produce([(0, _record("frank", 0, 1))])

    async def fired() -> bool:
        return len(await sc.alerts()) == 1

    await _until(fired, 30, "the match behind the poison record was not processed")
    consumer = AIOKafkaConsumer(
        kafka.deadletter_topic,
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
    assert msg.value == b"not a match"
    assert headers["detector.stage"] == "correlate"
    assert headers["detector.reason"] == "invalid_match"
    assert headers["detector.origin.topic"] == kafka.matches_topic
    assert headers["detector.origin.partition"] == "1"
    assert running.applied() == 1


@pytest.mark.services
async def test_matches_left_in_the_older_layout_are_applied_after_an_upgrade(
    services: Any, tmp_path: Path, start: Callable[..., Awaitable[Running]]
) -> None:
    """Matches and a heartbeat an older detect stage wrote (one record per match, keyed
    for Kafka's partitioner) still sit in the matches topic; after the upgrade they count
    together with the batched matches of the new detect stage, which land on the same
    partition: one alert over all three events, nothing dead-lettered."""
    sc = Scenario(services, tmp_path, op="gte", count=3, timespan="5m")
    invalid = {"stage": "correlate", "reason": "invalid_match"}
    dead_before = REGISTRY.get_sample_value("detector_dead_letters_total", invalid) or 0.0
    await sc.create_source(1)
    running = await start(sc)
    kafka = sc.settings.kafka
    old = [_record("gina", n * 10, n) for n in range(2)]
    detect = DetectPipeline(load_rules([sc.rules]))
    result = detect.process(
        [RawRecord(orjson.dumps(r), Origin("old-source", 0, n)) for n, r in enumerate(old)]
    )
    assert len(result.matches) == 2
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
    await producer.start()
    try:
        for routed in result.matches:  # the default partitioner, as older versions sent them
            sent = await producer.send_and_wait(
                kafka.matches_topic, encode_routed(routed), key=record_key(routed)
            )
        quiet = Watermark(0.0, "old", {"old-source/0": (result.max_event_time, True)})
        await producer.send_and_wait(
            kafka.matches_topic, encode_watermark(quiet), partition=sent.partition
        )
    finally:
        await producer.stop()
    await sc.produce([(0, _record("gina", 20, 2))])

    async def fired() -> bool:
        return len(await sc.alerts()) == 1

    await _until(fired, 30, "the older matches were not counted with the new one")
    (alert,) = await sc.alerts()
    assert alert["kibana"]["alert"]["event_count"] == 3
    assert set(alert["event"]["reference"]) >= {r["eventID"] for r in old}
    assert running.applied() == 3
    dead_after = REGISTRY.get_sample_value("detector_dead_letters_total", invalid) or 0.0
    assert dead_after == dead_before


def test_batched_matches_carry_what_their_rule_reads_and_garbage_is_rejected() -> None:
    """A version 4 record round-trips its matches in order (target, key, seq, rule id,
    event, origin) with the native values the router kept, the whole native record when
    the rule embeds it, the ECS document and the heartbeat; documents stay serialized until
    read, and the looked-up values answer field look-ups without a parse; a batch above
    the size limit is cut into several records, only the last with the heartbeat; the
    same matches in a version 3 or 2 record decode alike; corrupt or malformed batch
    records (versions 4, 3 and 2) raise ValueError naming what is wrong."""
    ecs_values = {"user.name": "alice", "source.ip": ABSENT}
    slim = RoutedMatch(
        "corr-1", '["alice"]', _match({"k": "v", "blob": b"x"}), 3, {"k": "v"}, ecs_values
    )
    whole = RoutedMatch(
        "fs-1", '["alice"]', _match({"k": "v", "blob": b"\x00\x01"}), 4, None, {}, {"k": "v"}
    )
    mark = Watermark(12.5, "m", {"src/2": (12.5, False)}, {"src/2": 1.0})
    (value,) = encode_batch([slim, whole], mark)
    assert value.startswith(BATCH_MAGIC)
    batch = decode_matches_record(value)
    assert isinstance(batch, MatchBatch)
    assert batch.heartbeat == mark
    first, second = batch.matches
    assert (first.target, first.key, first.seq) == ("corr-1", '["alice"]', 3)
    assert (second.target, second.seq) == ("fs-1", 4)
    assert first.match.rule.id == "r-1"
    assert first.match.selections == ("selection",)
    assert first.match.event.origin == slim.match.event.origin
    assert first.match.event.timestamp == slim.match.event.timestamp
    assert first.match.event.raw == {"k": "v"}
    ecs = first.match.event.ecs
    assert isinstance(ecs, SerializedDocument)
    assert lookup(ecs, "user.name") == "alice"
    assert lookup(ecs, "source.ip") is MISSING
    assert ecs._doc is None  # answered from the looked-up values: still unparsed
    assert lookup(ecs, "event.action") == "GetSecretValue"  # not looked up: parsed
    assert ecs == slim.match.event.ecs
    raw = second.match.event.raw
    assert isinstance(raw, SerializedDocument)
    assert lookup(raw, "k") == "v"
    assert raw._doc is None
    assert plain(raw) == {"k": "v", "blob": "AAE="}
    assert orjson.loads(orjson.dumps({"e": ecs}, default=json_default))["e"] == plain(ecs)

    values = encode_batch([slim, whole, slim], mark, max_bytes=10)
    decoded = [decode_matches_record(v) for v in values]
    assert [len(d.matches) for d in decoded if isinstance(d, MatchBatch)] == [1, 1, 1]
    assert [d.heartbeat for d in decoded if isinstance(d, MatchBatch)] == [None, None, mark]
    assert [m.match.event.ecs for d in decoded if isinstance(d, MatchBatch) for m in d.matches]

    def framed(doc: object, docs: bytes = b"", magic: bytes = BATCH_MAGIC) -> bytes:
        head = orjson.dumps(doc)
        if magic == BATCH_MAGIC_V2:
            return magic + zlib.compress(head)
        body = len(head).to_bytes(4, "big") + head + docs
        return magic + (deflate(body) if magic == BATCH_MAGIC else zlib.compress(body))

    body = inflate(value[len(BATCH_MAGIC) :], 1 << 20)
    size = int.from_bytes(body[:4], "big")
    head, docs = orjson.loads(body[4 : 4 + size]), body[4 + size :]
    good, other = head["matches"]
    lengths = head["docs"]

    def v4(items: list[Any], sizes: list[int] = lengths, blobs: bytes = docs) -> bytes:
        return framed({"matches": items, "docs": sizes}, blobs)

    def pairs(looked: list[Any] | None) -> list[list[Any]] | None:
        """Looked-up values as version 3 wrote them."""
        if looked is None:
            return None
        found, absent = looked
        return [*([k, v] for k, v in found.items()), *([k] for k in absent)]

    def v3(items: list[Any], sizes: list[int] = lengths, blobs: bytes = docs) -> bytes:
        return framed({"matches": items, "docs": sizes}, blobs, BATCH_MAGIC_V3)

    old3 = [[*item[:17], pairs(item[17]), pairs(item[18])] for item in (good, other)]
    v3_batch = decode_matches_record(framed({**head, "matches": old3}, docs, BATCH_MAGIC_V3))
    assert v3_batch == batch
    assert [m.match.event.ecs.fields for m in cast(MatchBatch, v3_batch).matches] == [
        m.match.event.ecs.fields for m in batch.matches
    ]
    old = [*good[:10], {"user": {"name": "alice"}}, *good[11:17]]
    v2 = framed({"matches": [old]}, magic=BATCH_MAGIC_V2)
    (back,) = cast(MatchBatch, decode_matches_record(v2)).matches
    assert back.match.event.ecs == {"user": {"name": "alice"}}
    assert back.match.event.raw == {"k": "v"}

    def v2_of(item: list[Any]) -> bytes:
        return framed({"matches": [item]}, magic=BATCH_MAGIC_V2)

    bad = {
        BATCH_MAGIC + b"not zstd": "does not decompress",
        BATCH_MAGIC + deflate(b"{}")[:-2]: "does not decompress",
        BATCH_MAGIC + deflate(b"{}") + b"tail": "does not decompress",
        BATCH_MAGIC_V3 + b"not zlib": "does not decompress",
        BATCH_MAGIC_V3 + zlib.compress(b"{}")[:-3]: "truncated",
        BATCH_MAGIC_V2 + zlib.compress(b"{"): "invalid JSON",
        BATCH_MAGIC + deflate(b"\x00\x00\x00\x09{}"): "shorter than its head",
        framed([]): "list of matches",
        v4([good[:5]]): "19 items",
        v4([[*good[:10], 99, *good[11:]]]): "position of a document",
        v4([[*good[:10], -1, *good[11:]]]): "position of a document",
        v4([[*good[:11], 7, *good[12:]]]): "position of a document",
        v4([[*good[:11], "x", *good[12:]]]): "an object or a position",
        v4([good], [lengths[0] + 1, *lengths[1:]]): "do not add up",
        v4([good], [len(docs)], b"[" + docs[1:]): "not a JSON object",
        v4([[*good[:17], [[1, 2]], None]]): "[{name: value}, [names]]",
        v4([[*good[:17], [{}, [1]], None]]): "[{name: value}, [names]]",
        v4([[1, *good[1:]]]): "target, key must be text",
        v4([[*good[:2], 2.5, *good[3:]]]): "seq an integer",
        v4([[*good[:3], None, *good[4:]]]): "rule id must be text",
        v4([[*good[:4], [1], *good[5:]]]): "selections must be a list of text",
        v4([[*good[:12], 5, *good[13:]]]): "topic and path must be text",
        v4([good, [*good[:6], True, *good[7:]]]): "time must be a number",
        v3([[*old3[0][:17], [[1, 2]], None]]): "[name, value] pairs",
        v3([old3[0][:5]]): "19 items",
        v2_of(old[:5]): "17 items",
        v2_of([*old[:10], [], *old[11:]]): "must be objects",
        v2_of([*old[:6], "soon", *old[7:]]): "time must be a number",
        v2_of([*old[:14], "7", *old[15:]]): "offset must be an integer",
        framed(
            {"matches": [], "heartbeat": {"time": 1, "sources": {"s": 3}}}, magic=BATCH_MAGIC_V2
        ): ("[time, idle]"),
    }
    for record, reason in bad.items():
        with pytest.raises(ValueError, match=re.escape(reason)):
            decode_matches_record(record)


def _match(raw: dict[str, Any]) -> Match:
    event = Event(
        id="e-1",
        timestamp=1_700_000_000.5,
        family="cloudtrail",
        logsource=LogSource("aws", "cloudtrail"),
        ecs={"user": {"name": "alice"}, "event": {"action": "GetSecretValue"}},
        raw=raw,
        origin=Origin(topic="src", partition=2, offset=41),
    )
    return Match(RuleInfo(id="r-1", title="Rule", tags=("attack.t1555",)), event, ("selection",))


def test_routed_match_and_watermark_round_trip_and_garbage_is_rejected() -> None:
    """A routed match decodes to an equal match (event, origin, rule facts), bytes in a
    native record become base64 text, and anything else raises ValueError."""
    routed = RoutedMatch("corr-1", '["alice"]', _match({"k": "v", "blob": b"\x00\x01"}), seq=3)
    back = decode_matches_record(encode_routed(routed))
    assert isinstance(back, RoutedMatch)
    assert (back.target, back.key, back.seq) == ("corr-1", '["alice"]', 3)
    assert back.match.rule == routed.match.rule
    assert back.match.selections == ("selection",)
    assert back.match.event.origin == routed.match.event.origin
    assert back.match.event.ecs == routed.match.event.ecs
    assert back.match.event.raw == {"k": "v", "blob": "AAE="}
    assert back.match.event.timestamp == routed.match.event.timestamp
    assert decode_matches_record(encode_watermark(Watermark(12.5, "m"))) == Watermark(12.5, "m")
    garbage = (b"", b"[]", b'{"v": 1, "type": "match"}', b'{"v": 2, "type": "watermark"}')
    for bad in (*garbage, b"\xff"):
        with pytest.raises(ValueError):
            decode_matches_record(bad)


def test_checkpoint_frame_round_trips_and_rejects_corruption() -> None:
    """The changelog frame keeps the offset and every section byte-exact; truncated or
    foreign bytes raise ValueError."""
    checkpoint = Checkpoint(offset=1234, sections={"meta": b"{}", "correlation:x": b"\x00" * 70})
    data = checkpoint.to_bytes()
    assert Checkpoint.from_bytes(data) == checkpoint
    for bad in (data[:-1], data + b"x", b"PK\x03\x04" + data[4:], b""):
        with pytest.raises(ValueError):
            Checkpoint.from_bytes(bad)


def test_detect_pipeline_routes_a_group_to_one_key_whatever_the_source_partition(
    tmp_path: Path,
) -> None:
    """Matches of one user from different source partitions get the same routing key (so
    one correlate partition); another user gets another key; the silent base rule raises
    no single-event alert; seq numbers the routed matches of each source record."""
    rules = tmp_path / "rules.yml"
    corr = str(uuid.uuid4())
    rules.write_text(
        BASE_RULE.format(tag="t", base_id=uuid.uuid4())
        + CORRELATION.format(tag="t", corr_id=corr, op="gte", count=2, timespan="5m")
    )
    ruleset = load_rules([rules])
    assert not ruleset.errors
    pipeline = DetectPipeline(ruleset)
    records = [
        RawRecord(orjson.dumps(_record(user, n, n)), Origin(topic="s", partition=n, offset=7))
        for n, user in enumerate(["alice", "alice", "bob"])
    ]
    result = pipeline.process(records)
    assert result.alerts == []
    assert [(m.target, m.key, m.seq) for m in result.matches] == [
        (corr, '["alice"]', 0),
        (corr, '["alice"]', 0),
        (corr, '["bob"]', 0),
    ]
    assert result.max_event_time == (T0 + timedelta(seconds=2)).timestamp()
