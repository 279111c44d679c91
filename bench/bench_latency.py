"""Alert latency of ``detector run`` while a partition holds a large correlate state.

Run from the repository root with the local services up (``scripts/services up``):
``.venv/bin/python bench/bench_latency.py [--keys 1000000] [--kinds first_seen,windows]
[--rate 5000] [--seconds 30] [--rounds 1] [--profile DIR]``.

For each round and each kind (``none`` first, the baseline without state) it starts a fresh
``detector run --stage all`` member (default rule pack with the example placeholders,
OpenSearch sink: ``bench_pipeline.run_config``) on a new source topic. Before a member
with state starts, the bench writes a per-key changelog of ``--keys`` keys of one rule of
the loaded pack to partition 0 of the member's state topic, built by that rule's engine
as the correlate stage builds it:

- ``first_seen``: terms of "Image Pull From A Network Never Seen For This Principal"
  (one user each, from one of 250 /24 networks), last seen over the past 29 days (the
  rule keeps them 30 days, so they stay active);
- ``windows``: open ``value_count`` windows of "Burst Of Pulls Across Many Repositories
  By One Principal" (one user each, one pull in the window, a small evidence document),
  within the last minute (the window is 5 minutes, so they stay open during the run).

The member restores them on assignment. Once it is ready the bench reads its
``detector_state_groups`` metric (the keys it holds), then offers records at ``--rate``
with the current time for ``--warmup`` seconds (not measured: the first alerts create the
index), then for ``--seconds`` (``bench_pipeline.latency``: about ten of them per second
raise a single-event alert) and times produce-to-alert-visible. It prints one row per
member: ready time (start-up plus restore), keys held before and after, p50 / p99 / max
latency, and resident and peak memory of the member. ``--profile DIR`` keeps a py-spy
profile (raw, native frames) of each measured run and each member's log there.
This is a benchmark, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import yaml
from bench_pipeline import (
    ROOT,
    create_topic,
    detector,
    latency,
    replay,
    run_config,
    scenario,
    services,
    wait_ready,
    workload,
)
from rich.console import Console
from rich.table import Table

from detector.app.service import build_detect_pipeline, internal_topics, load_ruleset
from detector.app.settings import load_settings
from detector.detect.correlation import CorrelationEngine
from detector.models import Event, LogSource, Match
from detector.state import KafkaChangelogStore, ensure_topics
from detector.state.partition import EngineFactory, PartitionState, Record

FIRST_SEEN_RULE = "Image Pull From A Network Never Seen For This Principal"
WINDOW_RULE = "Burst Of Pulls Across Many Repositories By One Principal"
#: Records per transaction while the state is written (not a measured figure).
FILL_CHUNK = 100_000
DAY = 86_400.0
console = Console(width=140)


def feeder(kind: str, state: PartitionState) -> Callable[[int, float], None]:
    """A function applying one image pull of user ``i`` at event time ``t`` to the rule of
    ``kind`` in ``state``, through the engine the correlate stage feeds."""
    if kind == "first_seen":
        (info,) = [s.info for s in state.first_seen.specs if s.info.title == FIRST_SEEN_RULE]
        engine = state.first_seen

        def pull(i: int, t: float) -> None:
            ecs = {
                "user": {"name": f"bench-user-{i:07d}"},
                "source": {"ip": f"203.0.{i % 250}.7"},  # few networks: parsed once each
            }
            event = Event(f"b{i}", t, "registry", LogSource("ecs", "ecs"), ecs, {})
            engine.process(Match(info, event), 0)

        return pull
    units = [
        (engine, spec)
        for engine in state.units.values()
        for spec in engine.specs
        if spec.info.title == WINDOW_RULE
    ]
    (unit, spec), *_ = units
    window: CorrelationEngine = unit
    base = spec.info.model_copy(update={"id": spec.refs[0].key})

    def pull_window(i: int, t: float) -> None:
        user = f"bench-user-{i:07d}"
        ecs = {
            "@timestamp": t,
            "user": {"name": user},
            "registry": {"operation": "pull"},
            "container": {"image": {"name": f"team-{i % 100}/service-{i % 1000}"}},
            "source": {"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"},
        }
        event = Event(f"b{i}", t, "registry", LogSource("ecs", "ecs"), ecs, {})
        window.process(Match(base, event), 0)

    return pull_window


def changelog(config: Path, kind: str, keys: int, now: float) -> tuple[list[Record], int]:
    """The state-topic records of partition 0 holding ``keys`` keys of ``kind`` (meta
    record last), and the keys the engines hold after building them."""
    settings = load_settings(config)
    ruleset = load_ruleset(settings)
    router = build_detect_pipeline(settings, ruleset).router
    factory = EngineFactory(
        ruleset,
        router,
        allowed_lateness=settings.rules.allowed_lateness_seconds,
        max_groups_per_rule=settings.rules.max_groups_per_rule,
    )
    state = PartitionState(0, factory)
    pull = feeder(kind, state)
    span = 29 * DAY if kind == "first_seen" else 60.0
    for i in range(keys):
        pull(i, now - span + span * i / keys)
    held = sum(s.active_groups for s in state.stats())
    state.offset = 0
    kafka = settings.kafka
    return state.changelog(f"{kafka.correlate_group_id}/{kafka.matches_topic}/0"), held


async def write_state(config: Path, records: list[Record]) -> float:
    """Create the member's internal topics and write ``records`` to partition 0 of its
    state topic, in whole transactions (meta record last); returns seconds."""
    settings = load_settings(config)
    kafka = settings.kafka
    await ensure_topics(kafka.bootstrap_servers, internal_topics(settings))
    store = KafkaChangelogStore(kafka.bootstrap_servers, kafka.state_topic, timeout_seconds=600)
    await store.start()
    started = time.perf_counter()
    try:
        for start in range(0, len(records), FILL_CHUNK):
            await store.write({0: records[start : start + FILL_CHUNK]})
    finally:
        await store.close()
    return time.perf_counter() - started


async def metrics(port: int) -> dict[str, float]:
    """The member's unlabelled Prometheus samples by name."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-z_]+) ([0-9.e+-]+)", line)
        if match:
            found[match[1]] = float(match[2])
    return found


async def held_keys(port: int, expected: int, limit: float = 30.0) -> float:
    """``detector_state_groups`` once the correlate stage has exported it (every second
    of polling), or what it says after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    groups = 0.0
    while time.monotonic() < deadline:
        groups = (await metrics(port)).get("detector_state_groups", 0.0)
        if groups >= expected:
            break
        await asyncio.sleep(0.5)
    return groups


def memory(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of process ``pid`` in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
    return int(values["VmRSS"]) / 1024, int(values["VmHWM"]) / 1024


async def member(
    args: argparse.Namespace,
    work: Path,
    kind: str,
    single: set[str],
    addresses: tuple[str, str],
) -> list[str]:
    """One member with the state of ``kind`` (or none): its row of the table."""
    bootstrap, search = addresses
    tag = uuid.uuid4().hex[:8]
    topic = f"bl-cloudtrail-{tag}"
    folder = work / tag
    folder.mkdir()
    config = run_config(folder, bootstrap, search, topic, tag, args.port)
    settings = yaml.safe_load(config.read_text())
    settings["rules"]["max_groups_per_rule"] = max(100_000, 2 * args.keys)
    config.write_bytes(orjson.dumps(settings))
    await create_topic(bootstrap, topic)
    expected = 0
    if kind != "none":
        started = time.perf_counter()
        records, expected = changelog(config, kind, args.keys, time.time())
        built = time.perf_counter() - started
        wrote = await write_state(config, records)
        console.print(
            f"{kind}: built {expected:,} keys ({len(records):,} records) in {built:.1f}s, "
            f"written in {wrote:.1f}s"
        )
        del records
    logfile = (folder / "run.log").open("wb")
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *detector("run", "--stage", "all", "--config", str(config)),
        cwd=ROOT,
        stdout=logfile,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_ready(args.port, proc, limit=900)
        ready = time.perf_counter() - started
        before = await held_keys(args.port, expected)
        console.print(f"{kind}: ready after {ready:.1f}s holding {before:,.0f} keys; warming up")
        # the first alerts create the index and the first batches fill caches: not measured
        await latency(bootstrap, search, topic, f"bp-alerts-{tag}", single, args.rate, args.warmup)
        spy = None
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            spy = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "--pid",
                str(proc.pid),
                "--native",
                "--rate",
                "50",
                "--format",
                "raw",
                "--duration",
                str(int(args.seconds)),
                "--output",
                str(args.profile / f"{kind}-{tag}.txt"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        lat, achieved = await latency(
            bootstrap, search, topic, f"bp-alerts-{tag}", single, args.rate, args.seconds
        )
        if spy is not None:
            await asyncio.wait_for(spy.wait(), 60)
        after = (await metrics(args.port)).get("detector_state_groups", 0.0)
        rss, peak = memory(proc.pid)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 120)
        except TimeoutError:
            proc.kill()
        logfile.close()
        if args.profile is not None:
            (args.profile / f"{kind}-{tag}.log").write_bytes((folder / "run.log").read_bytes())
    if not lat:
        return [kind, f"{ready:.1f}", f"{before:,.0f} / {after:,.0f}", "", "0", "", ""]
    cut = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    return [
        kind,
        f"{ready:.1f}",
        f"{before:,.0f} / {after:,.0f}",
        f"{achieved:,.0f}",
        f"{len(lat)}",
        f"{cut[49]:.3f} / {cut[98]:.3f} / {lat[-1]:.3f}",
        f"{rss:,.0f} / {peak:,.0f}",
    ]


async def main() -> None:
    """Measure every member and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="first_seen,windows")
    parser.add_argument("--rate", type=int, default=5000, help="events/s offered")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds offered first")
    parser.add_argument(
        "--profile",
        type=Path,
        help="folder for py-spy profiles (raw) of each measured run and the members' logs",
    )
    parser.add_argument("--port", type=int, default=18941, help="health port of detector run")
    args = parser.parse_args()
    addresses = services()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # the latency run offers the scenario's records again: find which of them raise a
        # single-event alert (a replay of one copy with the scenario's own ids and dates)
        values = list(workload(len(scenario())))
        log = work / "records.jsonl"
        log.write_bytes(b"\n".join(values) + b"\n")
        replay(log, work / "replay.jsonl", quiet=True)
        alerts = [orjson.loads(line) for line in (work / "replay.jsonl").read_bytes().splitlines()]
        single = {
            d["event"]["reference"][0]
            for d in alerts
            if len(d["event"]["reference"]) == 1 and d["rule"]["category"] == "sigma"
        }
        for _ in range(args.rounds):
            for kind in ["none", *args.kinds.split(",")]:
                rows.append(await member(args, work, kind, single, addresses))
    table = Table(
        title=f"alert latency at {args.rate:,} events/s for {args.seconds:.0f}s, "
        f"{args.keys:,} keys of state on partition 0"
    )
    head = [
        "state",
        "ready s",
        "keys held before / after",
        "offered ev/s",
        "alerts",
        "p50 / p99 / max s",
        "RSS / peak MiB",
    ]
    for column in head:
        table.add_column(column, justify="left" if column == "state" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    asyncio.run(main())
