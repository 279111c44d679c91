"""The correlate stage with two members while the durable alert sink is down.

Each correlate member writes its alerts through its own loopback proxy in front of the real
search engine. While a proxy is down it answers 503 to every request: the member pauses,
keeps its partitions and retries; its alerts must neither be lost nor committed past. When
the proxy forwards again, every alert is stored once, whichever member owns its group.
A member that dies during the outage leaves its windows in the changelog, as they were
before its undelivered batch, for the member that takes its partitions.

The scenario, the service runner, the ``start`` fixture and the bounded waits come from
``test_two_stage``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import test_two_stage
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner
from http_support import LoopbackServer, QuietHandler
from test_two_stage import Running, Scenario, _record, _until

from detector.app.pipeline import DetectPipeline
from detector.detect import load_rules
from detector.models import (
    MatchBatch,
    Origin,
    RawRecord,
    RoutedMatch,
    Watermark,
    decode_matches_record,
)
from detector.sinks.config import OpenSearchSinkConfig, RetryConfig, SinksConfig
from detector.sinks.matches import record_key
from detector.state import KafkaChangelogStore
from detector.state.checkpoint import stored_offset
from detector.state.partition import EngineFactory, PartitionState

start = test_two_stage.start  # the fixture: services started by a test are stopped after it

#: Matches per group that complete a window (``event_count >= 3`` within 10 minutes).
COUNT = 3
USER_FIELD = "userIdentity.userName"
#: rules.allowed_lateness_seconds of the scenario (the default).
LATENESS = 60.0


class SearchProxy(LoopbackServer):
    """The search engine behind a loopback proxy that can play an outage.

    While :attr:`down`, every request is answered 503 and the alerts of each refused
    ``_bulk`` request are recorded in :attr:`refused` (one ``{alert id: user}`` per
    request); otherwise requests are forwarded to ``upstream`` and answered as it answers.
    """

    def __init__(self, upstream: str) -> None:
        self.down = False
        self.refused: list[dict[str, str]] = []
        outer = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                body = self.read_body()
                if outer.down:
                    if self.path.split("?")[0].endswith("/_bulk"):
                        lines = [orjson.loads(x) for x in body.splitlines() if x.strip()]
                        outer.refused.append(
                            {
                                action["create"]["_id"]: doc["kibana"]["alert"]["group"]["key"][
                                    USER_FIELD
                                ]
                                for action, doc in zip(lines[::2], lines[1::2], strict=True)
                            }
                        )
                    self.send_payload(503, [("Content-Type", "application/json")], b"{}")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() == "content-type"}
                with httpx.Client(base_url=upstream, timeout=30) as client:
                    reply = client.request(self.command, self.path, content=body, headers=headers)
                content_type = reply.headers.get("content-type", "application/json")
                self.send_payload(
                    reply.status_code, [("Content-Type", content_type)], reply.content
                )

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer  # noqa: N815

        super().__init__(Handler)

    def users(self) -> set[str]:
        """The users whose correlation alert this proxy refused."""
        return {user for request in self.refused for user in request.values()}

    def retried(self) -> bool:
        """Whether some alert id was refused more than once (the member retries it)."""
        counts = Counter(alert_id for request in self.refused for alert_id in request)
        return any(n > 1 for n in counts.values())


@pytest.fixture
def proxies(services: Any) -> Iterator[Callable[[], SearchProxy]]:
    """Make search proxies; request it before ``start`` so they outlive the services."""
    with ExitStack() as stack:

        def make() -> SearchProxy:
            return stack.enter_context(SearchProxy(services.search_url).running())

        yield make


def _through(sc: Scenario, proxy: SearchProxy) -> Scenario:
    """The same scenario for a member whose alert sink is ``proxy`` (no sink-level retries,
    so an outage reaches the stage's backpressure at once)."""
    member = copy.copy(sc)
    sink = OpenSearchSinkConfig(hosts=[proxy.url], index=sc.index, retry=RetryConfig(max_retries=0))
    member.settings = sc.settings.model_copy(update={"sinks": SinksConfig(opensearch=sink)})
    return member


def _users_by_partition(sc: Scenario, per_partition: int) -> dict[int, list[str]]:
    """``per_partition`` users for every matches partition, found by routing candidate
    records through the detect pipeline and Kafka's default partitioner."""
    partitions = list(range(sc.settings.kafka.matches_partitions))
    pipeline = DetectPipeline(load_rules([sc.rules]))
    records = [
        RawRecord(orjson.dumps(_record(f"user{n}", 0, n)), Origin(sc.source, 0, n))
        for n in range(200)
    ]
    found: dict[int, list[str]] = {p: [] for p in partitions}
    for routed in pipeline.process(records).matches:
        partition = DefaultPartitioner()(record_key(routed), partitions, partitions)
        if len(found[partition]) < per_partition:
            found[partition].append(orjson.loads(routed.key)[0])
    assert all(len(users) == per_partition for users in found.values()), found
    return found


Records = dict[int, list[tuple[int, RoutedMatch | Watermark | MatchBatch]]]


async def _matches_topic(sc: Scenario) -> tuple[dict[int, int], Records]:
    """The end offset of every matches partition and its records (routed matches and
    heartbeats) with their offsets, in order."""
    kafka = sc.settings.kafka
    tps = [TopicPartition(kafka.matches_topic, p) for p in range(kafka.matches_partitions)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=sc.services.kafka, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: Records = {tp.partition: [] for tp in tps}

        async def read() -> bool:
            for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                for msg in messages:
                    found[tp.partition].append((msg.offset, decode_matches_record(msg.value)))
            positions = [await consumer.position(tp) for tp in tps]
            return all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True))

        await _until(read, 30, "could not read the matches topic to its end")
    finally:
        await consumer.stop()
    return {tp.partition: ends[tp] for tp in tps}, found


async def _firing_offsets(sc: Scenario) -> dict[int, int]:
    """For each matches partition holding a complete window, the offset of the first
    record whose processing fires an alert there: the match that completes a window, or
    the heartbeat that lets the watermark pass it (the matches wait in the reorder buffer,
    which is part of the checkpoint, until then)."""
    _, found = await _matches_topic(sc)
    ruleset = load_rules([sc.rules])
    factory = EngineFactory(ruleset, DetectPipeline(ruleset).router, allowed_lateness=LATENESS)
    firing: dict[int, int] = {}
    for partition, records in found.items():
        state = PartitionState(partition, factory)
        for offset, record in records:
            state.read(offset, record, 0.0)
            if state.release():
                firing[partition] = offset
                break
    return firing


async def _committed(sc: Scenario) -> dict[int, int | None]:
    """The committed offset of every matches partition in the correlate group."""
    kafka = sc.settings.kafka
    got = await sc.committed(
        kafka.correlate_group_id, kafka.matches_topic, kafka.matches_partitions
    )
    return dict(enumerate(got))


async def _assert_not_past_firing(
    sc: Scenario, offsets: dict[int, int | None], what: str, partitions: set[int] | None = None
) -> None:
    """No partition's ``offsets`` lie past the first match that completed a window there:
    none of those alerts is stored yet, so that input must be read again."""
    assert await sc.alerts() == []
    firing = await _firing_offsets(sc)
    for partition in sorted(firing if partitions is None else partitions & set(firing)):
        assert (offsets[partition] or 0) <= firing[partition], (
            f"partition {partition}: {what} offset {offsets[partition]} is past the match at "
            f"{firing[partition]} whose alert was not stored"
        )


async def _checkpointed(sc: Scenario) -> dict[int, int | None]:
    """The input offset of every partition's meta record in the changelog (None: none)."""
    kafka = sc.settings.kafka
    store = KafkaChangelogStore(sc.services.kafka, kafka.state_topic)
    await store.start()
    try:
        found: dict[int, int | None] = {}
        for p in range(kafka.matches_partitions):
            data = await store.load(f"{kafka.correlate_group_id}/{kafka.matches_topic}/{p}", p)
            found[p] = None if data is None else stored_offset(data)
        return found
    finally:
        await store.close()


async def _die(running: Running) -> None:
    """End a member as a crash or a failing sibling task does: cancel it (a drained stop
    would wait for the sink); its clients still close and leave the group."""
    running.task.cancel()
    await asyncio.wait([running.task], timeout=30)
    assert running.task.cancelled(), "the cancelled member did not end within 30 s"


async def _retrying(who: str, *proxies: SearchProxy) -> None:
    """Wait until the member behind every proxy has sent a refused alert again."""

    async def check() -> bool:
        return all(proxy.retried() for proxy in proxies)

    await _until(check, 60, f"{who} did not retry the alerts the sink refused")


async def _takes_over(member: Running, partitions: set[int]) -> None:
    """Wait until ``member`` owns exactly ``partitions`` (the other member is gone)."""

    async def owns() -> bool:
        return set(member.correlator.states) == partitions

    await _until(owns, 60, "the remaining member did not take over the lost member's partitions")


async def _routed(sc: Scenario, expected: int) -> None:
    """Wait until the detect stage has routed ``expected`` matches to the matches topic."""

    async def done() -> bool:
        _, found = await _matches_topic(sc)
        routed = sum(
            len(r.matches) if isinstance(r, MatchBatch) else isinstance(r, RoutedMatch)
            for records in found.values()
            for _, r in records
        )
        return routed >= expected

    await _until(done, 30, f"the detect stage did not route {expected} matches")


async def _all_committed(sc: Scenario) -> None:
    """Wait until the correlate group has committed every partition to its end."""

    async def done() -> bool:
        ends, _ = await _matches_topic(sc)
        committed = await _committed(sc)
        return all((committed[p] or 0) == end for p, end in ends.items())

    await _until(done, 60, "the correlate members did not commit the matches topic to its end")


async def _stored(sc: Scenario, expected: int) -> list[dict[str, Any]]:
    """Wait until ``expected`` correlation alerts are stored; then return them."""

    async def done() -> bool:
        return len(await sc.alerts()) >= expected

    await _until(done, 60, f"fewer than {expected} correlation alerts were stored")
    return await sc.alerts()


def _by_user(alerts: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The event counts of the stored alerts, per user."""
    out: dict[str, list[int]] = {}
    for alert in alerts:
        user = alert["kibana"]["alert"]["group"]["key"][USER_FIELD]
        out.setdefault(user, []).append(alert["kibana"]["alert"]["event_count"])
    return out


async def _two_members(
    sc: Scenario, start: Callable[..., Awaitable[Running]], make: Callable[[], SearchProxy]
) -> tuple[tuple[Running, SearchProxy], tuple[Running, SearchProxy]]:
    """A detect member on the real sink and two correlate members, each on its own proxy,
    that have split the matches partitions between them."""
    await sc.create_source(1)
    await start(sc, "detect")
    proxy_a, proxy_b = make(), make()
    a = await start(_through(sc, proxy_a), "correlate")
    b = await start(_through(sc, proxy_b), "correlate")
    partitions = set(range(sc.settings.kafka.matches_partitions))

    async def split() -> bool:
        owned_a, owned_b = set(a.correlator.states), set(b.correlator.states)
        complete = owned_a | owned_b == partitions and owned_a.isdisjoint(owned_b)
        return complete and bool(owned_a) and bool(owned_b)

    await _until(split, 30, "the two correlate members did not share the matches partitions")
    return (a, proxy_a), (b, proxy_b)


@pytest.mark.services
async def test_alerts_of_both_correlate_members_wait_out_a_sink_outage_and_are_stored_once(
    services: Any,
    tmp_path: Path,
    proxies: Callable[[], SearchProxy],
    start: Callable[..., Awaitable[Running]],
) -> None:
    """Two correlate members share the three matches partitions; two users per partition
    complete a window while both members' sinks answer 503. Each member retries the alerts
    of its own groups, keeps its partitions and commits no offset at or past a match that
    completed a window; nothing is stored. Once the sinks answer again every alert is
    stored exactly once (same ids as those refused), each written by one member only once,
    and the group commits the matches topic to its end."""
    sc = Scenario(services, tmp_path, op="gte", count=COUNT, timespan="10m")
    (a, proxy_a), (b, proxy_b) = await _two_members(sc, start, proxies)
    owned = {"a": set(a.correlator.states), "b": set(b.correlator.states)}
    users = _users_by_partition(sc, per_partition=2)
    everyone = {u for group in users.values() for u in group}

    proxy_a.down = proxy_b.down = True
    await sc.produce([(0, _record(u, 10 * n, n)) for n in range(COUNT) for u in sorted(everyone)])
    await _routed(sc, COUNT * len(everyone))

    await _retrying("the correlate members", proxy_a, proxy_b)
    assert set(await _firing_offsets(sc)) == set(users)  # complete windows everywhere
    await _assert_not_past_firing(sc, await _committed(sc), "committed")
    for proxy, mine in ((proxy_a, owned["a"]), (proxy_b, owned["b"])):
        assert proxy.users() <= {u for p in mine for u in users[p]}  # its own groups only
    refused = {i for proxy in (proxy_a, proxy_b) for r in proxy.refused for i in r}

    proxy_a.down = proxy_b.down = False
    alerts = await _stored(sc, len(everyone))
    await _all_committed(sc)
    assert _by_user(alerts) == {u: [COUNT] for u in everyone}
    assert refused <= {alert["event"]["id"] for alert in alerts}
    assert sc.alerts_delivered() == len(everyone)  # no alert was written twice
    assert {"a": set(a.correlator.states), "b": set(b.correlator.states)} == owned  # no rebalance
    assert a.applied() + b.applied() == COUNT * len(everyone)
    assert a.duplicates() + b.duplicates() == 0


@pytest.mark.services
async def test_member_lost_during_sink_outage_hands_its_windows_to_the_other_through_changelog(
    services: Any,
    tmp_path: Path,
    proxies: Callable[[], SearchProxy],
    start: Callable[..., Awaitable[Running]],
) -> None:
    """Two correlate members each hold partial windows (two of three matches per user),
    checkpointed and committed. The sinks go down; the last match of every group of member
    A's partitions arrives, A retries those alerts and then dies (its drain cannot finish
    during the outage). Member B takes A's partitions, restores their windows from the
    changelog (re-reading only the last matches), fires the same alert ids and retries
    them. After the outage each alert is stored once with all three events, and B's own
    windows, reloaded after the rebalance, still complete."""
    sc = Scenario(services, tmp_path, op="gte", count=COUNT, timespan="10m")
    (a, proxy_a), (b, proxy_b) = await _two_members(sc, start, proxies)
    owned_a, owned_b = set(a.correlator.states), set(b.correlator.states)
    users = _users_by_partition(sc, per_partition=1)
    users_a = sorted(u for p in owned_a for u in users[p])
    users_b = sorted(u for p in owned_b for u in users[p])
    everyone = users_a + users_b

    await sc.produce([(0, _record(u, 10 * n, n)) for n in range(COUNT - 1) for u in everyone])
    await _routed(sc, (COUNT - 1) * len(everyone))

    async def partial_applied() -> bool:  # the watermark let them out of the buffer
        return a.applied() + b.applied() == (COUNT - 1) * len(everyone)

    await _until(partial_applied, 30, "the partial windows were not applied")
    await _all_committed(sc)  # the partial windows are in the changelog
    assert await sc.alerts() == []

    proxy_a.down = proxy_b.down = True
    await sc.produce([(0, _record(u, 10 * (COUNT - 1), COUNT)) for u in users_a])

    await _retrying("member A", proxy_a)
    await _die(a)

    await _takes_over(b, owned_a | owned_b)

    await _retrying("member B, owning member A's partitions,", proxy_b)
    assert proxy_b.users() <= set(users_a)
    await _assert_not_past_firing(sc, await _committed(sc), "committed", owned_a)
    await _assert_not_past_firing(sc, await _checkpointed(sc), "checkpoint", owned_a)

    proxy_b.down = False
    alerts = await _stored(sc, len(users_a))
    assert _by_user(alerts) == {u: [COUNT] for u in users_a}
    for partition in owned_a:  # only the last match re-read: the rest came from the changelog
        state = b.correlator.states[partition]
        assert (state.applied, state.duplicates) == (len(users[partition]), 0)
    stored = {
        alert["kibana"]["alert"]["group"]["key"][USER_FIELD]: alert["event"]["id"]
        for alert in alerts
    }
    for proxy in (proxy_a, proxy_b):  # A and B fired the same deterministic ids
        for request in proxy.refused:
            assert all(stored[user] == alert_id for alert_id, user in request.items())

    await sc.produce([(0, _record(u, 10 * (COUNT - 1), COUNT)) for u in users_b])
    alerts = await _stored(sc, len(everyone))
    await _all_committed(sc)
    assert _by_user(alerts) == {u: [COUNT] for u in everyone}
    assert sc.alerts_delivered() == len(everyone)  # A's refused attempts never counted


@pytest.mark.services
async def test_member_dying_with_a_rebalance_pending_during_sink_outage_keeps_its_alerts(
    services: Any,
    tmp_path: Path,
    proxies: Callable[[], SearchProxy],
    start: Callable[..., Awaitable[Running]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Member A retries the alerts of its groups while the sink is down. Member B leaves
    (a drained stop: it holds no alert), so A's consumer starts a rebalance and asks the
    stage to give up its partitions; the stage waits for the batch in delivery. A then
    dies. No checkpoint may record A's undelivered batch as done: a new member restores
    the windows from the changelog and, once the sink is back, stores every alert once."""
    caplog.set_level(logging.INFO, logger="aiokafka.consumer.group_coordinator")
    sc = Scenario(services, tmp_path, op="gte", count=COUNT, timespan="10m")
    (a, proxy_a), (b, _) = await _two_members(sc, start, proxies)
    owned_a = set(a.correlator.states)
    users = _users_by_partition(sc, per_partition=1)
    users_a = sorted(u for p in owned_a for u in users[p])

    proxy_a.down = True
    await sc.produce([(0, _record(u, 10 * n, n)) for n in range(COUNT) for u in users_a])

    await _retrying("member A", proxy_a)
    seen = len(caplog.records)
    await b.stop()
    group = sc.settings.kafka.correlate_group_id

    async def a_revoking() -> bool:
        return any(
            r.getMessage().startswith("Revoking previously assigned partitions")
            and group in r.getMessage()
            for r in caplog.records[seen:]
        )

    await _until(a_revoking, 30, "member A did not start the rebalance after B left")
    await _die(a)
    await _assert_not_past_firing(sc, await _checkpointed(sc), "checkpoint", owned_a)

    proxy_a.down = False
    await start(sc, "correlate")  # a new member, on the real sink
    alerts = await _stored(sc, len(users_a))
    assert _by_user(alerts) == {u: [COUNT] for u in users_a}


@pytest.mark.services
async def test_drained_stop_during_sink_outage_ends_without_checkpointing_the_batch(
    services: Any,
    tmp_path: Path,
    proxies: Callable[[], SearchProxy],
    start: Callable[..., Awaitable[Running]],
) -> None:
    """Member A retries the alerts of its groups while both sinks are down, and is asked
    to stop (SIGTERM). It ends without waiting for the sink, and its undelivered batch is
    neither checkpointed nor committed. Member B takes A's partitions, reads the batch
    again and, once its sink answers, stores every one of those alerts once."""
    sc = Scenario(services, tmp_path, op="gte", count=COUNT, timespan="10m")
    (a, proxy_a), (b, proxy_b) = await _two_members(sc, start, proxies)
    owned_a, owned_b = set(a.correlator.states), set(b.correlator.states)
    users = _users_by_partition(sc, per_partition=1)
    users_a = sorted(u for p in owned_a for u in users[p])

    proxy_a.down = proxy_b.down = True
    await sc.produce([(0, _record(u, 10 * n, n)) for n in range(COUNT) for u in users_a])
    await _retrying("member A", proxy_a)
    await a.stop()  # a drained stop, bounded by Running.stop
    await _assert_not_past_firing(sc, await _checkpointed(sc), "checkpoint", owned_a)
    await _assert_not_past_firing(sc, await _committed(sc), "committed", owned_a)

    await _takes_over(b, owned_a | owned_b)
    proxy_b.down = False
    alerts = await _stored(sc, len(users_a))
    await _all_committed(sc)
    assert _by_user(alerts) == {u: [COUNT] for u in users_a}
