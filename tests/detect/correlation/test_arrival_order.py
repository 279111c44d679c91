"""Streaming equals replay: the correlate stage's alerts do not depend on arrival order.

A hypothesis property over the real detect pipeline, the matches-topic codec and the
correlate stage's :class:`PartitionState` (engines, duplicate filter, reorder buffer,
checkpoint and restore): whatever the interleaving of per-partition-ordered source
partitions, the batch sizes of both stages, and the points where a correlate member dies
and its successor restores the last checkpoint, the alerts (ids and content) equal those
``detector replay`` writes for the same records. The first-seen rule has a ``learn``
period, so its start must be the same in every matches partition and in replay.
"""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.app.ingest import Ingestor
from detector.app.pipeline import DetectPipeline
from detector.app.replay import replay
from detector.detect import RuleSet, load_rules
from detector.detect.correlation.ordering import SourceProgress
from detector.models import (
    Alert,
    Origin,
    RawRecord,
    Watermark,
    decode_matches_record,
    encode_batch,
    encode_routed,
    encode_watermark,
)
from detector.sinks.matches import partition_for, record_key
from detector.state.partition import EngineFactory, PartitionState

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SOURCE_PARTITIONS = 3
MATCHES_PARTITIONS = 2
LATENESS = 30.0

RULES = """
title: Secret read
id: 5e000000-0000-4000-8000-000000000001
name: secret_read
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: GetSecretValue}
  condition: sel
level: low
---
title: Secret list
id: 5e000000-0000-4000-8000-000000000002
name: secret_list
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: ListSecrets}
  condition: sel
level: low
---
title: Secret read from a new address
id: 5e000000-0000-4000-8000-000000000003
status: test
logsource: {product: aws, service: cloudtrail}
detection:
  sel: {eventSource: secretsmanager.amazonaws.com, eventName: GetSecretValue}
  condition: sel
first_seen:
  fields: [sourceIPAddress]
  group-by: [userIdentity.userName]
  timespan: 10m
  learn: 3m
level: medium
---
title: Read burst
id: 5e000000-0000-4000-8000-000000000004
status: test
correlation:
  type: event_count
  rules: [secret_read]
  group-by: [userIdentity.userName]
  timespan: 5m
  condition: {gte: 3}
level: high
---
title: Lonely read
id: 5e000000-0000-4000-8000-000000000005
status: test
correlation:
  type: event_count
  rules: [secret_read]
  group-by: [userIdentity.userName]
  timespan: 2m
  condition: {lt: 2}
level: low
---
title: Many secrets
id: 5e000000-0000-4000-8000-000000000006
status: test
correlation:
  type: value_count
  rules: [secret_read]
  group-by: [userIdentity.userName]
  timespan: 10m
  condition: {gte: 3, field: requestParameters.secretId}
level: medium
---
title: List then read
id: 5e000000-0000-4000-8000-000000000007
status: test
correlation:
  type: temporal_ordered
  rules: [secret_list, secret_read]
  group-by: [userIdentity.userName]
  timespan: 3m
level: medium
"""


def _record(partition: int, index: int, seconds: float, user: str, op: str, n: int) -> bytes:
    when = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return orjson.dumps(
        {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "userName": user, "accountId": "111122223333"},
            "eventTime": when,
            "eventSource": "secretsmanager.amazonaws.com",
            "eventName": op,
            "awsRegion": "eu-west-1",
            "sourceIPAddress": f"198.51.100.{n % 3}",
            "requestParameters": {"secretId": f"prod/secret-{n % 4}"},
            "eventID": f"ev-{partition}-{index}",
            "eventType": "AwsApiCall",
            "recipientAccountId": "111122223333",
        }
    )


# One source event: (gap in seconds after the previous event of its partition, user,
# operation, number choosing secret and address). The users' first-seen matches go to
# different matches partitions, so the learn period must start alike in both.
EVENT = st.tuples(
    st.integers(0, 90),
    st.sampled_from(["alice", "carol"]),
    st.sampled_from(["GetSecretValue", "GetSecretValue", "ListSecrets"]),
    st.integers(0, 11),
)


def _sources(partitions: list[list[tuple[int, str, str, int]]]) -> list[list[RawRecord]]:
    """Records per partition; each ends with an unrelated event a day later, so every
    window closes on event time in both runtimes (replay's end-of-input flush has nothing
    left that the stream would still hold open)."""
    out = []
    for p, events in enumerate(partitions):
        seconds = 0.0
        records = []
        for i, (gap, user, op, n) in enumerate([*events, (86_400, "zed", "DescribeSecret", 0)]):
            seconds += gap
            value = _record(p, i, seconds, user, op, n)
            records.append(RawRecord(value, Origin(topic="trail", partition=p, offset=i)))
        out.append(records)
    return out


def _content(alert: Alert) -> dict[str, Any]:
    """The stored document without the time it was built."""
    doc = alert.to_document()
    doc["event"].pop("created", None)
    return doc


_RULESETS: dict[str, RuleSet] = {}


def _ruleset(tmp: Path) -> RuleSet:
    if "r" not in _RULESETS:
        path = tmp / "rules.yml"
        path.write_text(RULES)
        ruleset = load_rules([path])
        assert not ruleset.errors, ruleset.errors
        _RULESETS["r"] = ruleset
    return _RULESETS["r"]


def _replayed(tmp: Path, ruleset: RuleSet, sources: list[list[RawRecord]]) -> dict[str, Any]:
    files = []
    for p, records in enumerate(sources):
        path = tmp / f"trail-{p}.jsonl"
        path.write_bytes(b"".join(r.value + b"\n" for r in records))
        files.append(path)
    result = replay(files, ruleset, Ingestor(source="cloudtrail"))
    assert result.too_late_events == 0
    return {a.id: _content(a) for a in result.alerts if a.rule.type != "sigma"}


STATE_KEY = "group/matches/0"


class _Correlate:
    """One matches partition and its (crashing) correlate member."""

    def __init__(self, partition: int, factory: EngineFactory) -> None:
        self.partition = partition
        self.factory = factory
        self.log: list[bytes] = []
        self.state = PartitionState(partition, factory)
        self.position = 0
        #: The compacted state topic: the newest value of each key, in the order written.
        self.saved: dict[bytes, bytes] = {}

    def consume(self, count: int, stored: dict[str, Any], now: float) -> None:
        """Read up to ``count`` records, deliver the alerts, then checkpoint."""
        start = self.position
        for offset in range(start, min(start + count, len(self.log))):
            self.state.read(offset, decode_matches_record(self.log[offset]), now)
            self.position = offset + 1
        for alert in self.state.release():  # op_type=create: the first write of an id stays
            stored.setdefault(alert.id, _content(alert))
        if self.state.offset is not None:
            for key, value in self.state.changelog(STATE_KEY):
                self.saved.pop(key, None)
                if value is not None:
                    self.saved[key] = value

    def unread(self) -> bool:
        """Whether input is left to read."""
        return self.position < len(self.log)

    def crash(self, now: float) -> None:
        """Lose memory; the successor restores the last checkpoint."""
        self.state = PartitionState(self.partition, self.factory)
        self.position = 0
        for key, value in self.saved.items():
            self.state.load_record(key[len(STATE_KEY) :], value)
        if self.state.finish_restore(now):
            self.position = self.state.resume_offset() or 0


def _progress(value: tuple[float | None, bool]) -> SourceProgress:
    return SourceProgress(*value)


@pytest.mark.parametrize("wire", ["records", "batches"])
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    partitions=st.lists(
        st.lists(EVENT, max_size=12), min_size=SOURCE_PARTITIONS, max_size=SOURCE_PARTITIONS
    ),
    data=st.data(),
)
def test_any_arrival_order_batching_and_restart_gives_replays_alerts(
    tmp_path: Path,
    wire: str,
    partitions: list[list[tuple[int, str, str, int]]],
    data: st.DataObject,
) -> None:
    """Per-partition-ordered source records, drained in a random interleaving with random
    detect and correlate batch sizes, random detect batches sent twice (a detect member
    dying before its commit) and random correlate crashes (restore from the last
    checkpoint, re-read the rest): the stored correlation and first-seen alerts equal
    replay's, ids and content, and nothing is too late. ``records``: one record per
    match and heartbeat (the layout of older detect stages); ``batches``: one record per
    matches partition and detect batch, cut at random sizes, carrying the heartbeat."""
    ruleset = _ruleset(tmp_path)
    sources = _sources(partitions)
    expected = _replayed(tmp_path, ruleset, sources)

    detect = DetectPipeline(ruleset, default=Ingestor(source="cloudtrail"))
    factory = EngineFactory(ruleset, detect.router, allowed_lateness=LATENESS)
    matches = [_Correlate(m, factory) for m in range(MATCHES_PARTITIONS)]
    read = [0] * SOURCE_PARTITIONS
    times: dict[str, float] = {}
    earliest: dict[str, float] = {}
    stored: dict[str, Any] = {}
    now = 0.0

    def watermark(idle: bool) -> Watermark:
        sources_progress = {
            f"trail/{p}": (times.get(f"trail/{p}"), idle) for p in range(SOURCE_PARTITIONS)
        }
        return Watermark(0.0, "m", sources_progress, dict(earliest))

    def heartbeat(idle: bool, skip: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        value = encode_watermark(watermark(idle))
        for part in matches:
            if part.partition not in skip:
                part.log.append(value)

    def detect_batch(p: int, count: int) -> None:
        batch = sources[p][read[p] : read[p] + count]
        read[p] += len(batch)
        result = detect.process(batch)
        for source, newest in result.progress.items():
            times[source] = max(times.get(source, newest), newest)
        for source, first in result.earliest.items():
            earliest[source] = min(earliest.get(source, first), first)
        told: set[int] = set()
        if wire == "records":
            for routed in result.matches:
                target = zlib.crc32(record_key(routed)) % MATCHES_PARTITIONS
                matches[target].log.append(encode_routed(routed))
        else:
            grouped: dict[int, list[Any]] = {}
            for routed in result.matches:
                grouped.setdefault(partition_for(routed, MATCHES_PARTITIONS), []).append(routed)
            cut = data.draw(st.sampled_from([1 << 20, 1500]))
            for target, routed_matches in grouped.items():
                for value in encode_batch(routed_matches, watermark(False), max_bytes=cut):
                    matches[target].log.append(value)
            told = set(grouped)
        heartbeat(idle=False, skip=told)
        if data.draw(st.integers(0, 5)) == 5:
            read[p] -= len(batch)  # died before its commit: the batch is sent again

    while True:
        now += 1.0
        left = [p for p in range(SOURCE_PARTITIONS) if read[p] < len(sources[p])]
        unread = [m for m in matches if m.unread()]
        steps = (["detect"] if left else []) + (["correlate"] if unread else [])
        if not steps:
            break
        step = data.draw(st.sampled_from([*steps, "crash"]))
        if step == "detect":
            detect_batch(data.draw(st.sampled_from(left)), data.draw(st.integers(1, 5)))
        elif step == "correlate":
            part = data.draw(st.sampled_from(unread))
            part.consume(data.draw(st.integers(1, 8)), stored, now)
        else:
            data.draw(st.sampled_from(matches)).crash(now)
    heartbeat(idle=True)  # drained: every source is idle
    for part in matches:
        if data.draw(st.booleans()):
            part.crash(now)
        part.consume(len(part.log), stored, now)

    assert sum(p.state.too_late for p in matches) == 0
    assert set(stored) == set(expected)
    for alert_id, doc in expected.items():
        assert stored[alert_id] == doc, alert_id


def test_a_match_behind_the_watermark_is_too_late_and_first_seen_learns_it(
    tmp_path: Path,
) -> None:
    """A match that arrives after the watermark passed its time is not fed out of order:
    it is counted as too late, and a first-seen rule learns its term without alerting."""
    ruleset = _ruleset(tmp_path)
    detect = DetectPipeline(ruleset, default=Ingestor(source="cloudtrail"))
    factory = EngineFactory(ruleset, detect.router, allowed_lateness=0)
    state = PartitionState(0, factory)
    late = detect.process(
        [RawRecord(_record(1, 0, 10, "carol", "GetSecretValue", 1), Origin("trail", 1, 0))]
    )
    state.report({"trail/0": _progress((500.0 + T0.timestamp(), False))}, 0.0)
    assert state.release() == []
    first_seen = [r for r in late.matches if r.target == "5e000000-0000-4000-8000-000000000003"]
    assert len(first_seen) == 1
    state.accept(first_seen[0], 1.0, 0)
    assert state.too_late == 1
    fs = state.first_seen.stats.rules["5e000000-0000-4000-8000-000000000003"]
    assert fs.too_late_events == 1 and fs.active_groups == 1
    again = detect.process(
        [RawRecord(_record(1, 1, 600, "carol", "GetSecretValue", 1), Origin("trail", 1, 1))]
    )
    for n, routed in enumerate(again.matches, start=1):
        state.accept(routed, 2.0, n)
    progress = _progress((700.0 + T0.timestamp(), False))
    state.report({"trail/0": progress, "trail/1": progress}, 3.0)
    assert [a for a in state.release() if a.rule.type == "first_seen"] == []
