"""The state topic on the real broker: per-key records written in transactions, restores
that see whole batches only, and whole-state checkpoints of earlier versions."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from detector.detect import load_rules
from detector.detect.correlation.routing import MatchRouter
from detector.detect.correlation.spec import rule_info
from detector.models import Event, LogSource, Match
from detector.state import KafkaChangelogStore, TopicSpec, ensure_topics
from detector.state.checkpoint import decode_meta, is_checkpoint
from detector.state.partition import EngineFactory, PartitionState

pytestmark = pytest.mark.services

T0 = 1_700_000_000.0
RULES = """
title: Image pull
id: 5a000000-0000-4000-8000-000000000001
name: pull
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
---
title: Pull from a new address
id: 5a000000-0000-4000-8000-000000000002
logsource: {product: ecs}
detection:
  sel: {registry.operation: pull}
  condition: sel
first_seen: {fields: [source.ip], group-by: [user.name], timespan: 30d}
---
title: Many pulls
id: 5a000000-0000-4000-8000-000000000003
correlation:
  type: event_count
  rules: [pull]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 10}
"""
BASE = "group/matches/0"


async def _store(kafka: str) -> KafkaChangelogStore:
    topic = f"state-{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(topic, 1, 1, {"cleanup.policy": "compact"})
    await ensure_topics(kafka, [spec])
    store = KafkaChangelogStore(kafka, topic, timeout_seconds=60)
    await store.start()
    return store


async def _read(store: KafkaChangelogStore) -> dict[bytes, bytes]:
    """The committed records of partition 0 as compaction leaves them."""
    found: dict[bytes, bytes] = {}

    def keep(key: bytes, value: bytes | None) -> None:
        found.pop(key, None)
        if value is not None:
            found[key] = value

    await store.replay([0], keep)
    return found


async def test_a_batch_that_did_not_commit_is_invisible_to_a_restore(services: Any) -> None:
    """Batch 1 commits (two key records, then its meta). Batch 2 writes new values of a key
    and a new key but dies before its meta: its transaction stays open until the broker
    aborts it. A restore started meanwhile waits for that and sees batch 1 exactly (old
    value, no new key, batch 1's meta); a batch aborted by its writer is invisible too."""
    store = await _store(services.kafka)
    crashed = AIOKafkaProducer(
        bootstrap_servers=services.kafka,
        transactional_id=f"crashed-{uuid.uuid4().hex}",
        transaction_timeout_ms=3000,
    )
    aborted = AIOKafkaProducer(
        bootstrap_servers=services.kafka, transactional_id=f"aborted-{uuid.uuid4().hex}"
    )
    await crashed.start()
    await aborted.start()
    try:
        batch1 = [(b"g/k1", b"1"), (b"g/k2", b"1"), (b"g", b"meta-1")]
        await store.write({0: batch1})
        await crashed.begin_transaction()
        for key, value in [(b"g/k1", b"2"), (b"g/k3", b"2")]:
            await (await crashed.send(store.topic, value, key=key, partition=0))
        await aborted.begin_transaction()
        await (await aborted.send(store.topic, b"3", key=b"g/k2", partition=0))
        await aborted.abort_transaction()
        assert await _read(store) == dict(batch1)
        await store.write({0: [(b"g/k2", None), (b"g", b"meta-2")]})
        assert await _read(store) == {b"g/k1": b"1", b"g": b"meta-2"}
    finally:
        await aborted.stop()
        await asyncio.wait_for(crashed.stop(), 30)
        await store.close()


def _state(tmp_path: Path, users: int) -> tuple[PartitionState, dict[str, Any]]:
    """A partition state holding ``users`` open event_count windows and first-seen terms."""
    (tmp_path / "rules.yml").write_text(RULES)
    ruleset = load_rules([tmp_path / "rules.yml"])
    router = MatchRouter(
        [r.sigma for r in ruleset.rules], ruleset.correlations, rule_ids=dict(ruleset.names)
    )
    factory = EngineFactory(ruleset, router)
    state = PartitionState(0, factory)
    rules = {r.sigma.title: r.sigma for r in ruleset.rules}
    for i in range(users):
        ecs = {"user": {"name": f"u{i}"}, "source": {"ip": f"10.0.0.{i % 7}"}}
        event = Event(f"e{i}", T0 + i, "registry", LogSource("ecs", "ecs"), ecs, {})
        state.first_seen.process(Match(rule_info(rules["Pull from a new address"]), event))
        for unit in state.units.values():
            unit.process(Match(rule_info(rules["Image pull"]), event))
    state.offset = users
    return state, _contents(state)


def _contents(state: PartitionState) -> dict[str, Any]:
    """Every section of the whole-state form, groups as mappings."""
    out: dict[str, Any] = {}
    for name, data in state.checkpoint().sections.items():
        doc = orjson.loads(data)
        for part in doc.get("parts", ()):
            for rule in part["rules"].values():
                for field in ("groups", "seen"):
                    rule[field] = {tuple(k): v for k, v in rule.get(field, ())}
        out[name] = doc
    return out


async def test_an_older_whole_state_checkpoint_restores_and_is_rewritten_per_key(
    services: Any, tmp_path: Path
) -> None:
    """A whole-state checkpoint written by an earlier version under the partition's key
    restores to the same state; the next changelog writes every group and term plus a
    meta record in its place, and a restore of those equals the state again."""
    store = await _store(services.kafka)
    plain = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all")
    await plain.start()
    try:
        state, before = _state(tmp_path, 50)
        await plain.send_and_wait(
            store.topic, state.checkpoint().to_bytes(), key=BASE.encode(), partition=0
        )
        for expect_rewrite in (True, False):
            restored, _ = _state(tmp_path, 0)
            for key, value in (await _read(store)).items():
                restored.load_record(key[len(BASE) :], value)
            assert restored.finish_restore(0.0)
            assert restored.rewrite is expect_rewrite
            assert restored.offset == 50
            assert _contents(restored) == before
            records = restored.changelog(BASE)
            assert len(records) == (101 if expect_rewrite else 1)  # 50 terms, 50 windows, meta
            await store.write({0: records})
        stored = (await _read(store))[BASE.encode()]
        assert not is_checkpoint(stored)
        assert decode_meta(stored)[0] == 50
    finally:
        await plain.stop()
        await store.close()
