"""Benchmark: the Kafka runtime against a raw consumer and against ``detector replay``.

Run from the repository root with the local services up (``scripts/services up``; the
``DETECTOR_KAFKA_PORT``/``DETECTOR_SEARCH_PORT`` of ``scripts/services`` apply):
``.venv/bin/python bench/bench_pipeline.py [--records 200000] [--rate 5000] [--seconds 20]``.

The records are the scenario's CloudTrail log (``examples/scenario/logs/cloudtrail.jsonl``:
two days of CI/CD, registry and console traffic with attack stories), repeated with the event
time shifted by two days per copy (all in the past) and fresh event ids, until ``--records``.
They go, in event-time order, to a new 6-partition topic and to a JSON-lines file. Then:

a. a raw aiokafka ``getmany`` loop over the topic (the detect stage's fetch settings);
b. the same loop plus ``orjson.loads`` of every record;
c. ``detector replay`` of the file (default rule pack), its alerts written to a file;
d. ``detector run --stage all`` (OpenSearch sink) draining the topic: until every source
   and matches offset is committed and the alerts of (c) are stored; the stored alerts are
   then compared with (c), ids and content (``event.created`` aside). ``--layouts`` names
   the member layouts measured, each on fresh consumer groups and topics: by default one
   process (d) and one command with two worker processes (d2, ``--workers 2``);
e. produce-to-alert-visible latency of each layout while its members keep running:
   records at ``--rate`` per second with the current time, to a topic of their own among
   the members' source topics, among them records that raise a single-event alert; the
   time from their produce call until a search finds the alert;
f. the cost model, in this process on one core without I/O: CPU time per event (ingest,
   detect, route), per routed match (encode into the batch records, decode, apply in the
   correlate stage's ``PartitionState``) and per checkpoint of the resulting state, and
   the events/s one core sustains for each stage from them.

Events/s of (c) and (d) exclude each command's start-up (rule loading, group join), which
is printed separately. This is a benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from rich.console import Console
from rich.table import Table

from detector.normalize import COMPILED

ROOT = Path(__file__).resolve().parent.parent
#: The example settings: the rule pack's placeholders take the scenario's values there.
SETTINGS = ROOT / "examples" / "detector.yaml"
SCENARIO = ROOT / "examples" / "scenario" / "logs" / "cloudtrail.jsonl"
PARTITIONS = 6
SHIFT = timedelta(days=2)
FETCH_BYTES = 2 * 1024 * 1024  # kafka.max_partition_fetch_bytes default
BATCH = 500  # kafka.max_batch_records default
console = Console()


# -- records ----------------------------------------------------------------------------


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _stamp(record: dict[str, Any], when: datetime, copy: int | str) -> dict[str, Any]:
    """A copy of ``record`` at ``when`` with an event id unique to ``copy``."""
    out = dict(record)
    out["eventTime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    out["eventID"] = str(uuid.uuid5(uuid.NAMESPACE_OID, f"{copy}/{record['eventID']}"))
    return out


def scenario() -> list[dict[str, Any]]:
    """The scenario's CloudTrail records in event-time order."""
    records = [orjson.loads(line) for line in SCENARIO.read_bytes().splitlines() if line]
    return sorted(records, key=lambda r: _time(r["eventTime"]))


def workload(count: int) -> Iterator[bytes]:
    """``count`` records: copies of the scenario, each two days after the previous one; the
    last copy has the scenario's own dates, so no event time is in the future (the ingest
    guard would flag it)."""
    base = scenario()
    copies = -(-count // len(base))
    made = 0
    copy = 0
    while made < count:
        shift = (copy - copies + 1) * SHIFT
        for record in base:
            if made == count:
                return
            yield orjson.dumps(_stamp(record, _time(record["eventTime"]) + shift, copy))
            made += 1
        copy += 1


def trailer(values: list[bytes]) -> list[bytes]:
    """One quiet record per partition two days after the last one: it moves the stream's
    watermark past every window, as the end of input does in replay."""
    last = _time(orjson.loads(values[-1])["eventTime"]) + SHIFT
    quiet = next(r for r in scenario() if r["eventName"].startswith("Describe"))
    return [orjson.dumps(_stamp(quiet, last, f"end{p}")) for p in range(PARTITIONS)]


# -- Kafka helpers ----------------------------------------------------------------------


async def create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> float:
    """Produce ``values`` in order, round robin over the partitions; returns seconds."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20)
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for i, value in enumerate(values):
            pending.append(await producer.send(topic, value, partition=i % PARTITIONS))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_read(bootstrap: str, topic: str, parse: bool) -> tuple[float, int]:
    """Read the whole topic with ``getmany`` (optionally ``orjson.loads``); seconds, records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=FETCH_BYTES,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends.values())
        seen = 0
        started = time.perf_counter()
        while seen < total:
            polled = await consumer.getmany(timeout_ms=500, max_records=BATCH)
            for messages in polled.values():
                seen += len(messages)
                if parse:
                    for msg in messages:
                        orjson.loads(msg.value)
        return time.perf_counter() - started, seen
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str, count: int) -> list[int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) for p in range(count)]
    finally:
        await consumer.stop()


async def end_offsets(bootstrap: str, topic: str) -> list[int]:
    """End offsets of the ``PARTITIONS`` partitions of ``topic`` (the source topic and the
    matches topic, ``kafka.matches_partitions`` default, have that many)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        return [ends[tp] for tp in tps]
    finally:
        await consumer.stop()


# -- search helpers ---------------------------------------------------------------------


async def stored(search: str, index: str) -> dict[str, dict[str, Any]]:
    """Every alert document in ``index`` by id."""
    docs: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(base_url=search, timeout=60) as client:
        await client.post(f"/{index}/_refresh")
        page = await client.post(
            f"/{index}/_search?scroll=1m", json={"size": 5000, "query": {"match_all": {}}}
        )
        if page.status_code == 404:
            return docs
        body = page.json()
        while body["hits"]["hits"]:
            for hit in body["hits"]["hits"]:
                docs[hit["_id"]] = hit["_source"]
            page = await client.post(
                "/_search/scroll", json={"scroll": "1m", "scroll_id": body["_scroll_id"]}
            )
            body = page.json()
    return docs


async def count(client: httpx.AsyncClient, index: str) -> int:
    await client.post(f"/{index}/_refresh")
    found = await client.get(f"/{index}/_count")
    return int(found.json().get("count", 0)) if found.status_code == 200 else 0


def _comparable(doc: dict[str, Any]) -> bytes:
    """The document without what differs by run (creation time)."""
    event = {k: v for k, v in doc.get("event", {}).items() if k != "created"}
    return orjson.dumps({**doc, "event": event}, option=orjson.OPT_SORT_KEYS)


# -- the measured commands --------------------------------------------------------------


def detector(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "detector"), *args]


def replay(path: Path, out: Path, *, quiet: bool = False) -> float:
    """Seconds of ``detector replay`` over ``path``."""
    started = time.perf_counter()
    subprocess.run(
        detector(
            "replay",
            str(path),
            "-s",
            "cloudtrail",
            "-o",
            str(out),
            "--max-rows",
            "0",
            "--config",
            str(SETTINGS),
        ),
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if quiet else None,
    )
    return time.perf_counter() - started


def _absolute(value: Any) -> Any:
    """``value`` of the example settings with its relative paths made absolute."""
    if isinstance(value, dict):
        return {
            k: _absolute(v) if k != "file" else str(SETTINGS.parent / v) for k, v in value.items()
        }
    return value


def run_config(
    work: Path,
    bootstrap: str,
    search: str,
    topics: str | list[str],
    tag: str,
    port: int,
    *,
    name: str = "run.yml",
) -> Path:
    topics = [topics] if isinstance(topics, str) else topics
    rules = yaml.safe_load(SETTINGS.read_text())["rules"]
    rules["paths"] = [str(SETTINGS.parent / p) for p in rules["paths"]]
    rules["placeholders"] = _absolute(rules["placeholders"])
    config = {
        "rules": rules,
        "kafka": {
            "bootstrap_servers": bootstrap,
            "topics": topics,
            "topic_formats": {topic: {"source": "cloudtrail"} for topic in topics},
            "group_id": f"bp-detect-{tag}",
            "correlate_group_id": f"bp-correlate-{tag}",
            "matches_topic": f"bp-matches-{tag}",
            "state_topic": f"bp-state-{tag}",
            "deadletter_topic": f"bp-dlq-{tag}",
            "source_idle_seconds": 1,
        },
        "sinks": {"opensearch": {"hosts": [search], "index": f"bp-alerts-{tag}"}},
        "health": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning"},
    }
    path = work / name
    path.write_bytes(orjson.dumps(config))  # JSON is YAML
    return path


async def wait_ready(port: int, proc: asyncio.subprocess.Process, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"detector run exited with {proc.returncode}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("detector run did not become ready")


async def drained(
    bootstrap: str, search: str, topic: str, tag: str, expected: int, limit: float
) -> float:
    """Wait until every offset is committed and ``expected`` alerts are stored, or the
    stored count has not moved for 10 s with every offset committed; returns the
    ``perf_counter`` time at which the last of these was first true."""
    index = f"bp-alerts-{tag}"
    source_end = await end_offsets(bootstrap, topic)
    deadline = time.monotonic() + limit
    last = (-1, time.perf_counter())
    async with httpx.AsyncClient(base_url=search, timeout=30) as client:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            stored_now = await count(client, index)
            if stored_now != last[0]:
                last = (stored_now, time.perf_counter())
            done = await committed(bootstrap, f"bp-detect-{tag}", topic, PARTITIONS)
            if done != source_end:
                continue
            matches = f"bp-matches-{tag}"
            ends = await end_offsets(bootstrap, matches)
            if await committed(bootstrap, f"bp-correlate-{tag}", matches, len(ends)) != ends:
                continue
            if stored_now >= expected:
                return time.perf_counter()
            if time.perf_counter() - last[1] > 10:
                return last[1]
    raise SystemExit(f"not drained within {limit:.0f}s")


async def latency(
    bootstrap: str,
    search: str,
    topic: str,
    index: str,
    alerting: set[str],
    rate: int,
    seconds: float,
) -> tuple[list[float], float]:
    """Produce at ``rate``/s for ``seconds`` and time the single-event alerts; returns the
    latencies and the rate the producer achieved."""
    base = scenario()
    triggers = [r for r in base if _stamp(r, _time(r["eventTime"]), 0)["eventID"] in alerting]
    produced: dict[str, float] = {}
    seen: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=2)
    await producer.start()
    stop = asyncio.Event()

    async def poll() -> None:
        async with httpx.AsyncClient(base_url=search, timeout=10) as client:
            while not (stop.is_set() and len(seen) >= len(produced)):
                wanted = [e for e in produced if e not in seen]
                if wanted:
                    await client.post(f"/{index}/_refresh")
                    found = await client.post(
                        f"/{index}/_search",
                        json={
                            "size": 1000,
                            "_source": ["event.reference"],
                            "query": {"terms": {"event.reference": wanted[:1000]}},
                        },
                    )
                    now = time.perf_counter()
                    for hit in found.json().get("hits", {}).get("hits", []):
                        for ref in hit["_source"]["event"]["reference"]:
                            seen.setdefault(ref, now)
                await asyncio.sleep(0.02)

    poller = asyncio.create_task(poll())
    try:
        started = time.perf_counter()
        sent = 0
        every = max(1, rate // 10)  # about ten alerting records per second
        while (elapsed := time.perf_counter() - started) < seconds:
            # what is due, in one record batch per partition: the per-record path of the
            # pure-Python producer cannot offer 5,000 records/s on a busy machine
            batches = {p: producer.create_batch() for p in range(PARTITIONS)}
            due = int(elapsed * rate)
            while sent < due:
                now = datetime.now(UTC)
                if sent % every == 0:
                    record = _stamp(triggers[sent // every % len(triggers)], now, f"lat{sent}")
                    produced[record["eventID"]] = time.perf_counter()
                else:
                    record = _stamp(base[sent % len(base)], now, f"lat{sent}")
                if (
                    batches[sent % PARTITIONS].append(
                        key=None, value=orjson.dumps(record), timestamp=None
                    )
                    is None
                ):
                    break  # batch full: the rest goes with the next round
                sent += 1
            for partition, batch in batches.items():
                if batch.record_count():
                    await producer.send_batch(batch, topic, partition=partition)
            await asyncio.sleep(0.005)
        await producer.flush()
        achieved = sent / (time.perf_counter() - started)
        stop.set()
        try:
            await asyncio.wait_for(poller, 60)
        except TimeoutError:
            console.print(f"[red]{len(produced) - len(seen)} alerts not visible after 60s[/red]")
    finally:
        stop.set()
        poller.cancel()
        await producer.stop()
    return sorted(seen[e] - produced[e] for e in produced if e in seen), achieved


# -- cost model -------------------------------------------------------------------------


def detect_setup(values: Iterable[bytes]) -> tuple[Any, Any, list[Any]]:
    """The default pack's rule set, the detect stage's pipeline and ``values`` as source
    records of a topic of ``PARTITIONS`` partitions, with ``detector run``'s logging and
    garbage-collector settings: what the in-process measurements start from."""
    from detector.app.collector import tune_collector  # noqa: PLC0415
    from detector.app.logging import configure_logging  # noqa: PLC0415
    from detector.app.service import build_detect_pipeline, load_ruleset  # noqa: PLC0415
    from detector.app.settings import load_settings  # noqa: PLC0415
    from detector.models import Origin, RawRecord  # noqa: PLC0415

    configure_logging("error")
    topic = "bench"
    settings = load_settings(SETTINGS, kafka={"topic_formats": {topic: {"source": "cloudtrail"}}})
    ruleset = load_ruleset(settings)
    pipeline = build_detect_pipeline(settings, ruleset)
    tune_collector()
    now_ms = int(time.time() * 1000)
    records = [
        RawRecord(v, Origin(topic, i % PARTITIONS, i // PARTITIONS), timestamp_ms=now_ms)
        for i, v in enumerate(values)
    ]
    return ruleset, pipeline, records


def costs(values: list[bytes]) -> list[tuple[str, str]]:
    """CPU seconds per event, per routed match and per checkpoint over ``values``, the
    detect stage's and the correlate stage's code without Kafka (``detector run``'s
    garbage-collector settings)."""
    from detector.models import (  # noqa: PLC0415
        MatchBatch,
        Watermark,
        decode_matches_record,
        encode_batch,
    )
    from detector.sinks.matches import partition_for  # noqa: PLC0415
    from detector.state.partition import EngineFactory, PartitionState  # noqa: PLC0415

    ruleset, pipeline, records = detect_setup(values)
    clock = time.process_time
    started = clock()
    results = [pipeline.process(records[i : i + BATCH]) for i in range(0, len(records), BATCH)]
    detect = clock() - started
    matches = sum(len(r.matches) for r in results)

    logs: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    progress: dict[str, tuple[float | None, bool]] = {}
    encode = 0.0
    for result in results:
        for source, newest in result.progress.items():
            progress[source] = (newest, False)
        mark = Watermark(0.0, "bench", dict(progress), {})
        started = clock()
        grouped: dict[int, list[Any]] = {}
        for routed in result.matches:
            grouped.setdefault(partition_for(routed, PARTITIONS), []).append(routed)
        documents: dict[int, Any] = {}
        for partition, routed_matches in grouped.items():
            logs[partition] += encode_batch(routed_matches, mark, documents=documents)
        encode += clock() - started
    drained = Watermark(0.0, "bench", {s: (t, True) for s, (t, _) in progress.items()}, {})
    sent = [len(v) for log in logs.values() for v in log]

    factory = EngineFactory(ruleset, pipeline.router)
    decode = apply = checkpoint = 0.0
    saved = checkpoints = 0
    for partition, log in logs.items():
        state = PartitionState(partition, factory)
        for offset, value in enumerate(log):
            started = clock()
            record = decode_matches_record(value)
            decode += clock() - started
            assert isinstance(record, MatchBatch)
            started = clock()
            state.read(offset, record, 0.0)
            state.release()
            apply += clock() - started
            # a checkpoint after each record: the changelog records of what it changed
            started = clock()
            saved += sum(len(k) + len(v or b"") for k, v in state.changelog("bench"))
            checkpoint += clock() - started
            checkpoints += 1
        state.read(len(log), drained, 0.0)
        state.release()

    us = 1e6
    per_event = detect / len(values)
    per_match = (encode + decode + apply) / matches
    fan_out = matches / len(values)
    return [
        ("events; routed matches per event", f"{len(values):,}; {fan_out:.2f}"),
        ("per event: ingest, detect, route (detect stage)", f"{per_event * us:.0f} µs"),
        ("per routed match: encode (detect stage)", f"{encode / matches * us:.1f} µs"),
        ("per routed match: decode (correlate stage)", f"{decode / matches * us:.1f} µs"),
        ("per routed match: apply (correlate stage)", f"{apply / matches * us:.1f} µs"),
        (
            "match records; bytes per match (compressed)",
            f"{len(sent):,}; {sum(sent) / matches:.0f}",
        ),
        (
            "per checkpoint of one match record's changes (changelog records)",
            f"{checkpoint / checkpoints * us / 1000:.2f} ms, {saved // checkpoints:,} bytes",
        ),
        (
            "one core: detect stage only, correlate stage only (events/s)",
            f"{1 / (per_event + fan_out * encode / matches):,.0f}, "
            f"{1 / (fan_out * (decode + apply) / matches):,.0f}",
        ),
        ("one core: both stages (events/s)", f"{1 / (per_event + fan_out * per_match):,.0f}"),
    ]


# -- main -------------------------------------------------------------------------------


#: Names of the layouts of step (d): members separated by ``+``, each a ``--stage`` value,
#: ``*N`` for a member of N worker processes (``--workers N``).
LAYOUTS = {
    "all": "d. detector run --stage all",
    "all*2": "d2. detector run --stage all --workers 2",
    "all+all": "two members, --stage all",
    "detect+correlate": "--stage detect + --stage correlate",
}


class Members:
    """``detector run`` processes, one per member of ``layout``, sharing one configuration
    (consumer groups, matches and state topics, alert index named by ``tag``); each worker
    gets its own health port. Stopped with SIGTERM on exit."""

    def __init__(
        self,
        work: Path,
        bootstrap: str,
        search: str,
        topics: list[str],
        tag: str,
        layout: str,
        port: int,
    ) -> None:
        self.work = work / tag
        self.work.mkdir()
        self.index = f"bp-alerts-{tag}"
        self.members: list[tuple[str, int, int, Path]] = []  # stage, workers, port, config
        self.ports: list[int] = []
        for i, member in enumerate(layout.split("+")):
            stage, _, workers = member.partition("*")
            count = int(workers or 1)
            config = run_config(self.work, bootstrap, search, topics, tag, port, name=f"run{i}.yml")
            self.members.append((stage, count, port, config))
            self.ports += range(port, port + count)
            port += count
        self.procs: list[asyncio.subprocess.Process] = []
        self.logs: list[Any] = []
        self.started = 0.0

    async def __aenter__(self) -> Members:
        for port in self.ports:
            # another process answering on the port would pass for a ready member
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise SystemExit(f"health port {port} is in use: pass another --port")
        self.started = time.perf_counter()
        for i, (stage, workers, _, config) in enumerate(self.members):
            log = (self.work / f"run{i}.log").open("wb")
            self.logs.append(log)
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    *detector(
                        "run", "--stage", stage, "--workers", str(workers), "--config", str(config)
                    ),
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        return self

    async def ready(self) -> float:
        """Seconds from the start until the first worker is ready (work starts then; the
        others join while it drains); returns once every worker is ready."""
        first = asyncio.create_task(self._first_ready())
        try:
            await self._all_ready()
        except BaseException:
            first.cancel()
            raise
        return await first

    async def _first_ready(self) -> float:
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                for port in self.ports:
                    try:
                        if (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            return time.perf_counter() - self.started
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(0.05)

    async def _all_ready(self) -> None:
        for i, ((_, workers, port, _), proc) in enumerate(
            zip(self.members, self.procs, strict=True)
        ):
            try:
                for worker_port in range(port, port + workers):
                    await wait_ready(worker_port, proc)
            except SystemExit:
                self.logs[i].flush()
                console.print((self.work / f"run{i}.log").read_text()[-3000:])
                raise

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
        for log in self.logs:
            log.close()


class Comparison:
    """Stored alerts against replay's: ids missing, extra, and with different content."""

    def __init__(self, expected: dict[str, Any], got: dict[str, Any]) -> None:
        self.got = got
        self.missing = sorted(expected.keys() - got.keys())
        self.extra = sorted(got.keys() - expected.keys())
        self.differ = [
            k
            for k in expected.keys() & got.keys()
            if _comparable(expected[k]) != _comparable(got[k])
        ]
        self.same = not self.missing and not self.extra and not self.differ

    def show(self, name: str, expected: dict[str, Any]) -> None:
        console.print(
            f"{name}: alerts: replay {len(expected)}, stored {len(self.got)}, missing "
            f"{len(self.missing)}, extra {len(self.extra)}, different content "
            f"{len(self.differ)}: "
            + ("[green]identical[/green]" if self.same else "[red]DIFFERENT[/red]")
        )
        for key in self.missing:
            doc = expected[key]
            console.print(f"  missing: {doc['rule']['name']} at {doc['@timestamp']}")
        for key in self.extra:
            doc = self.got[key]
            console.print(f"  extra: {doc['rule']['name']} at {doc['@timestamp']}")


def services() -> tuple[str, str]:
    """Kafka and search addresses of the running local services (started if needed)."""
    state = Path(os.environ.get("DETECTOR_SERVICES_DIR", ROOT / ".services")) / "env"
    if not state.exists():
        subprocess.run([str(ROOT / "scripts" / "services"), "up"], check=True, cwd=ROOT)
    env = dict(
        line.removeprefix("export ").split("=", 1)
        for line in state.read_text().splitlines()
        if "=" in line
    )
    return env["DETECTOR_TEST_KAFKA"], env["DETECTOR_TEST_SEARCH_URL"]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5000, help="events/s of the latency run")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument(
        "--port", type=int, default=18931, help="health port of the first detector run member"
    )
    parser.add_argument(
        "--layouts",
        nargs="+",
        default=["all", "all*2"],
        help="layouts of step (d): members separated by '+', each a --stage value with "
        "'*N' for N workers; each also runs the latency step (e)",
    )
    args = parser.parse_args()
    bootstrap, search = services()
    tag = uuid.uuid4().hex[:8]
    topic = f"bp-cloudtrail-{tag}"
    rows: list[tuple[str, float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        values = list(workload(args.records))
        values += trailer(values)
        log = work / "records.jsonl"
        log.write_bytes(b"\n".join(values) + b"\n")
        await create_topic(bootstrap, topic)
        seconds = await produce(bootstrap, topic, values)
        console.print(f"produced {len(values):,} records to {topic} in {seconds:.1f}s")

        for name, parse in (("a. raw getmany", False), ("b. getmany + orjson.loads", True)):
            seconds, read = await raw_read(bootstrap, topic, parse)
            rows.append((name, read / seconds, seconds, 0.0))

        empty = work / "empty.jsonl"
        empty.write_bytes(b"")
        startup = replay(empty, work / "none.jsonl", quiet=True)
        out = work / "replay.jsonl"
        seconds = replay(log, out)
        rows.append(
            ("c. detector replay (file)", len(values) / (seconds - startup), seconds, startup)
        )
        expected = {d["event"]["id"]: d for d in map(orjson.loads, out.read_bytes().splitlines())}
        # source events of single-event alerts: the latency run produces them again (not
        # of first-seen alerts: their terms are known by then, so they would not fire)
        single = {
            d["event"]["reference"][0]
            for d in expected.values()
            if len(d["event"]["reference"]) == 1 and d["rule"]["category"] == "sigma"
        }

        verdicts: list[tuple[str, Comparison]] = []
        latencies: list[tuple[str, list[float], float]] = []
        for layout in args.layouts:
            name = LAYOUTS.get(layout, f"d. members {layout}")
            run_tag = uuid.uuid4().hex[:8]
            # the latency step's records go to a topic of their own: the backlog stays
            # the same for the next layout
            fresh = f"bp-latency-{run_tag}"
            await create_topic(bootstrap, fresh)
            async with Members(
                work, bootstrap, search, [topic, fresh], run_tag, layout, args.port
            ) as members:
                startup = await members.ready()
                console.print(f"{name}: ready after {startup:.1f}s; draining")
                finished = await drained(bootstrap, search, topic, run_tag, len(expected), 1800)
                seconds = finished - members.started
                console.print(f"drained after {seconds:.1f}s; comparing alerts")
                rows.append((name, len(values) / (seconds - startup), seconds, startup))
                verdicts.append((name, Comparison(expected, await stored(search, members.index))))
                if args.seconds > 0:
                    console.print(f"latency run: {args.rate:,} events/s for {args.seconds:.0f}s")
                    lat, achieved = await latency(
                        bootstrap, search, fresh, members.index, single, args.rate, args.seconds
                    )
                    latencies.append((name.split(" ", 1)[0], lat, achieved))

    build = "compiled (mypyc)" if COMPILED else "interpreted"
    table = Table(
        title=f"{len(values):,} CloudTrail records, {PARTITIONS} partitions, {build} build"
    )
    for column in ("step", "events/s", "vs (c)", "vs (b)", "wall s", "start-up s"):
        table.add_column(column, justify="left" if column == "step" else "right")
    replay_rate = rows[2][1]
    for name, rate, wall, start in rows:
        table.add_row(
            name,
            f"{rate:,.0f}",
            f"{rate / replay_rate:.2f}",
            f"{rate / rows[1][1]:.3f}",
            f"{wall:.1f}",
            f"{start:.1f}" if start else "",
        )
    console.print(table)
    for name, verdict in verdicts:
        verdict.show(name, expected)
    for step, lat, achieved in latencies:
        if not lat:
            console.print(f"[red]e. ({step}) no alert became visible[/red]")
            continue
        p50 = statistics.quantiles(lat, n=100)[49] if len(lat) > 1 else lat[0]
        p99 = statistics.quantiles(lat, n=100)[98] if len(lat) > 1 else lat[0]
        console.print(
            f"e. ({step}) produce-to-alert-visible at {args.rate:,} events/s (produced "
            f"{achieved:,.0f}/s) for {args.seconds:.0f}s: "
            f"{len(lat)} alerts, p50 {p50:.3f}s, p99 {p99:.3f}s, max {lat[-1]:.3f}s"
        )
    model = Table(title="f. cost model: CPU in process, one core, no I/O")
    model.add_column("cost")
    model.add_column("measured", justify="right")
    for name, figure in costs(values):
        model.add_row(name, figure)
    console.print(model)
    if not all(verdict.same for _, verdict in verdicts):
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
