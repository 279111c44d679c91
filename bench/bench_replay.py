"""Benchmark: ``detector replay`` against ``rsigma engine eval``, whole process, one core.

Both get the same rules (the vendored SigmaHQ CloudTrail rules and the project's CloudTrail
rules) and the same NDJSON file of generated CloudTrail records (about 1.3 KB each, built
from the vendored OTRF sample and the scenario's CloudTrail records with new ids and
times; seeded, so every run writes the same file). Each command runs as a whole process
pinned to one core (``taskset -c 0`` when present), ``--runs`` times; the table shows the
median wall time, the median peak RSS (GNU time, when installed), events/s and replay's ratio to
rsigma. Then both outputs are compared: for the rules both evaluate as single-event rules
(rsigma loads them; replay alerts on them alone), the (rule id, event id) matches must be
the same.

rsigma is used from PATH or ``~/.cargo/bin``; when missing and cargo is present it is built
with ``cargo install rsigma`` (release 0.23.0, evaluator only; ``--no-install`` skips that);
without it only replay is timed.

``--memory-run`` adds the long run: replay over ``--memory-records`` (10,000,000) generated
records, reporting its peak RSS.

Run from the repository root: ``.venv/bin/python bench/bench_replay.py [--records N]
[--runs N] [--memory-run] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from detector.app.policy import effective_rules
from detector.app.rulepack import rule_loader
from detector.app.settings import load_settings
from detector.detect.alerting import silent_rule_ids

SAMPLES = [
    Path("examples/samples/otrf-cloudtrail"),
    Path("examples/scenario/logs/cloudtrail.jsonl"),
]
RULES = [Path("detections/sigmahq/aws/cloudtrail"), Path("detections/rules/cloudtrail")]
GROUND_TRUTH = Path("examples/scenario/ground_truth.json")
#: Share of records copied from the scenario's attack stories (the rest is background).
ATTACK_SHARE = 0.02
SEED = 13
#: The rsigma release measured in issue 13 (newer ones need a newer Rust).
RSIGMA_VERSION = "0.23.0"
START = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
#: Settings of the replay runs: the example organization values for the placeholders and
#: the shipped tuning of the SigmaHQ pack (rsigma gets the same rules, see rsigma_rules).
SETTINGS = Path("examples/detector.yaml")


def templates() -> tuple[list[bytes], list[bytes]]:
    """The sample CloudTrail records as (background, attack) templates, one JSON object
    each, id and time fields replaced by ``{id}``, ``{request}`` and ``{time}`` markers.
    Attack templates are the scenario's story records (its ground truth)."""
    truth = orjson.loads(GROUND_TRUTH.read_bytes())
    story_ids = {i for story in truth["stories"].values() for i in story["event_ids"]}
    background: list[bytes] = []
    attack: list[bytes] = []
    for source in SAMPLES:
        files = sorted(source.glob("*.json*")) if source.is_dir() else [source]
        for path in files:
            for line in path.read_bytes().splitlines():
                record = orjson.loads(line) if line.strip() else None
                if not isinstance(record, dict) or "eventTime" not in record:
                    continue
                kind = attack if record.get("eventID") in story_ids else background
                record["eventID"] = "{id}"
                record["requestID"] = "{request}"
                record["eventTime"] = "{time}"
                kind.append(orjson.dumps(record))
    return background, attack


def records(count: int, seed: int = SEED) -> Iterator[bytes]:
    """``count`` NDJSON lines: background templates with ``ATTACK_SHARE`` attack ones,
    new ids, times about 0.75 s apart and up to 5 s out of order (as CloudTrail writes
    them)."""
    rng = random.Random(seed)
    # [text, key, text, key, text]: a template around its markers
    background, attack = (
        [re.split(rb'"\{(id|request|time)\}"', t) for t in kind] for kind in templates()
    )
    for i in range(count):
        pieces = rng.choice(attack if rng.random() < ATTACK_SHARE else background)
        stamp = START + i * 0.75 - rng.random() * 5
        values = {
            b"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)).encode(),
            b"request": f"{rng.getrandbits(64):016X}".encode(),
            b"time": datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode(),
        }
        line = [b'"' + values[p] + b'"' if n % 2 else p for n, p in enumerate(pieces)]
        yield b"".join(line) + b"\n"


def write_records(path: Path, count: int) -> tuple[int, int]:
    """Write ``count`` records to ``path``; returns (records, bytes)."""
    size = 0
    with path.open("wb") as fh:
        for line in records(count):
            fh.write(line)
            size += len(line)
    return count, size


@dataclass
class Run:
    """One finished process: wall seconds, peak RSS in MiB, exit status."""

    wall: float
    rss_mib: float
    status: int


def run(argv: Sequence[str], stdout: Path | None = None) -> Run:
    """Run ``argv`` pinned to core 0; wall time and peak RSS of the process itself.

    The peak comes from GNU time when it is installed: a process forked from this (large)
    Python process would report this process's memory as its own peak."""
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []
    with open(stdout or os.devnull, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.run(
            [*timer, *pin, *argv], stdout=out, stderr=subprocess.PIPE, check=False
        )
        wall = time.perf_counter() - started
    lines = proc.stderr.decode(errors="replace").strip().splitlines()
    if timer and lines and lines[-1].isdigit():
        return Run(wall, int(lines[-1]) / 1024, proc.returncode)
    return Run(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, proc.returncode)


def median_runs(argv: Sequence[str], runs: int, stdout: Path) -> Run:
    """Median wall time and peak RSS over ``runs`` runs (the last run's output kept)."""
    results = [run(argv, stdout) for _ in range(runs)]
    for result in results:
        if result.status != 0:
            sys.exit(f"{argv[0]} exited with {result.status}: {' '.join(argv)}")
    return Run(
        statistics.median(r.wall for r in results),
        statistics.median(r.rss_mib for r in results),
        0,
    )


def find_rsigma(install: bool) -> str | None:
    """rsigma from PATH or cargo's bin folder, built with cargo when missing and allowed."""
    cargo_bin = Path.home() / ".cargo" / "bin"
    found = shutil.which("rsigma") or shutil.which("rsigma", path=str(cargo_bin))
    if found or not install:
        return found
    cargo = shutil.which("cargo") or shutil.which("cargo", path=str(cargo_bin))
    if cargo is None:
        return None
    print("building rsigma with cargo install (takes minutes) ...", file=sys.stderr)
    # The evaluator only: the default features add the daemon (HTTP, TLS, SQLite).
    # (rsigma-runtime is needed without them too: 0.23.0 does not build otherwise).
    install = [
        cargo,
        "install",
        "--locked",
        "--no-default-features",
        "--features",
        "rsigma-runtime",
    ]
    install.append("rsigma")
    if subprocess.run([*install, "--version", RSIGMA_VERSION], check=False).returncode:
        return None
    return shutil.which("rsigma", path=str(cargo_bin))


def replay_matches(path: Path) -> set[tuple[str, str]]:
    """(rule id, event id) of every alert replay wrote."""
    out: set[tuple[str, str]] = set()
    for line in path.read_bytes().splitlines():
        doc = orjson.loads(line)
        for event_id in doc["event"].get("reference") or ():
            out.add((str(doc["rule"]["id"]), str(event_id)))
    return out


def rsigma_matches(path: Path) -> set[tuple[str, str]]:
    """(rule id, eventID) of every match rsigma printed."""
    out: set[tuple[str, str]] = set()
    for line in path.read_bytes().splitlines():
        if not line.startswith(b"{"):
            continue
        doc = orjson.loads(line)
        event = doc.get("event") or {}
        out.add((str(doc.get("rule_id")), str(event.get("eventID"))))
    return out


def shared_rules(folder: Path) -> tuple[int, set[str]]:
    """Copy the rule files replay evaluates (the shipped tuning applied) into ``folder``
    for rsigma; returns how many rules replay evaluates and the ids of those to compare:
    single-event rules on native CloudTrail fields, without placeholders (rsigma has no
    values for them), that alert on their own."""
    settings = load_settings(SETTINGS)
    effective, _ = effective_rules(settings.rules, rule_loader(settings.rules)(RULES))
    ruleset = effective.ruleset
    silent = silent_rule_ids(ruleset)
    folder.mkdir(parents=True, exist_ok=True)
    compared: set[str] = set()
    for rule in ruleset.rules:
        if rule.path is None:
            continue
        text = Path(rule.path).read_text(encoding="utf-8")
        (folder / Path(rule.path).name).write_text(text, encoding="utf-8")
        if not rule.scope.ecs and rule.info.id not in silent and "%" not in text:
            compared.add(rule.info.id)
    return len(ruleset.rules) + len(ruleset.correlations), compared


def main() -> None:
    """Generate the input, time both commands, print the table and the match check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=116_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-install", action="store_true", help="Never build rsigma.")
    parser.add_argument("--memory-run", action="store_true", help="Also the 10M-record run.")
    parser.add_argument("--memory-records", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep its files.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        bench(args, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def bench(args: argparse.Namespace, work: Path) -> None:
    """The runs of :func:`main` in ``work``."""
    data = work / "cloudtrail.ndjson"
    count, size = write_records(data, args.records)
    print(f"input: {count:,} records, {size / count:,.0f} bytes each on average")
    settings = SETTINGS
    detector = str(Path(sys.executable).with_name("detector"))
    rule_args = [a for r in RULES for a in ("--rules", str(r))]
    replay_out = work / "replay.jsonl"
    replay_argv = [detector, "replay", str(data), *rule_args, "-c", str(settings)]
    replay = median_runs([*replay_argv, "-o", str(replay_out)], args.runs, work / "replay.txt")
    rows = [("detector replay", replay)]
    rsigma = find_rsigma(not args.no_install)
    if rsigma is None:
        print(
            "rsigma not found and not built (--no-install, no cargo or a failed build): replay only"
        )
    else:
        loaded, compared = shared_rules(work / "rules")
        print(f"rules: replay evaluates {loaded}; compared with rsigma: {len(compared)}")
        argv = [
            rsigma,
            "engine",
            "eval",
            "-r",
            str(work / "rules"),
            "-e",
            f"@{data}",
            "--include-event",
        ]
        rows.append(("rsigma engine eval", median_runs(argv, args.runs, work / "rsigma.jsonl")))
    print(f"\nmedian of {args.runs}, whole process, one core\n")
    print("| command | wall s | peak RSS MiB | events/s | events/s vs rsigma |")
    print("|---|---:|---:|---:|---:|")
    base = count / rows[-1][1].wall if rsigma is not None else None
    for name, result in rows:
        rate = count / result.wall
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"| {name} | {result.wall:.2f} | {result.rss_mib:,.0f} | {rate:,.0f} | {ratio} |")
    if rsigma is not None:
        compare(replay_out, work / "rsigma.jsonl", compared)
    if args.memory_run:
        memory_run(args.memory_records, replay_argv[:2], rule_args, work)


#: Records per file of the memory run: replay reads at most 512 MiB of one file.
FILE_RECORDS = 300_000


def memory_run(count: int, command: list[str], rule_args: list[str], work: Path) -> None:
    """Replay ``count`` generated records (files of FILE_RECORDS, consecutive in time),
    alerts written to a file, and print the peak RSS, events/s and replay's summary."""
    folder = work / "memory"
    folder.mkdir(exist_ok=True)
    lines = records(count)
    size = 0
    for n in range(0, count, FILE_RECORDS):
        part = folder / f"part-{n // FILE_RECORDS:04d}.ndjson"
        with part.open("wb") as fh:
            fh.writelines(itertools.islice(lines, FILE_RECORDS))
        size += part.stat().st_size
    files = -(-count // FILE_RECORDS)
    print(f"\nmemory run: {count:,} records, {size / 2**30:,.1f} GiB in {files} files")
    alerts = work / "memory-alerts.jsonl"
    argv = [*command, str(folder), *rule_args, "-c", str(SETTINGS), "-o", str(alerts)]
    result = run(argv, work / "memory.txt")
    shutil.rmtree(folder)
    documents = sum(1 for _ in alerts.open("rb"))
    print(
        f"wall {result.wall:,.0f} s, {count / result.wall:,.0f} events/s, peak RSS "
        f"{result.rss_mib:,.0f} MiB, {documents:,} alert documents written (exit {result.status})"
    )
    text = (work / "memory.txt").read_text(errors="replace")
    print(text[text.find("Summary") :].rstrip() if "Summary" in text else text[-3000:])


def compare(replay_out: Path, rsigma_out: Path, compared: set[str]) -> None:
    """Print whether both found the same (rule, event) matches for the ``compared`` rules."""
    ours = {m for m in replay_matches(replay_out) if m[0] in compared}
    theirs = {m for m in rsigma_matches(rsigma_out) if m[0] in compared}
    if ours == theirs:
        rules = len({rule for rule, _ in ours})
        print(f"\nsame matches: {len(ours):,} (rule, event) pairs of {rules} rules")
        return
    print(
        f"\nDIFFERENT matches: replay only {len(ours - theirs)}, rsigma only {len(theirs - ours)}"
    )
    for rule, event in sorted(ours ^ theirs)[:20]:
        print(f"  {'replay' if (rule, event) in ours else 'rsigma'} only: {rule} {event}")
    sys.exit(1)


if __name__ == "__main__":
    main()
