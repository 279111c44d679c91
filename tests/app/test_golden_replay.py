"""Replay's complete output on the vendored samples and the scenario equals a golden copy.

The golden file holds every alert document ``detector replay -o`` wrote (the default rule
packs with the example settings) before the hot path was made faster; any change to the
decode, normalize, detect or alert code that changes one byte of one alert fails here.
Only ``event.created`` (the wall-clock time the alert was made) is left out of the
comparison.

After an intended change of the results (a new or edited rule, a new ECS field), write
the golden file again from the repository root and review its diff:
``.venv/bin/python tests/app/test_golden_replay.py --write``.
"""

from __future__ import annotations

import gzip
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from detector.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "replay" / "golden_alerts.jsonl.gz"
INPUTS = [ROOT / "examples" / "samples", ROOT / "examples" / "scenario" / "logs"]
CONFIG = ROOT / "examples" / "detector.yaml"
#: The summary lines that must not change either (records, events, dead letters, alerts).
SUMMARY_ROWS = ("records read", "events", "rules loaded", "dead letters", "alerts")


def run_replay(output: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Alert documents (``event.created`` removed) and summary rows of one replay."""
    result = CliRunner().invoke(
        app,
        ["replay", *map(str, INPUTS), "-c", str(CONFIG), "-o", str(output)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    docs = [orjson.loads(line) for line in output.read_bytes().splitlines()]
    for doc in docs:
        doc["event"].pop("created", None)
    summary: dict[str, str] = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if len(cells) == 2 and cells[0] in SUMMARY_ROWS:
            summary[cells[0]] = cells[1]
    return docs, summary


def golden() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The golden documents and summary (first line of the file)."""
    lines = gzip.decompress(GOLDEN.read_bytes()).splitlines()
    return [orjson.loads(line) for line in lines[1:]], orjson.loads(lines[0])


def test_replay_output_equals_golden(tmp_path: Path) -> None:
    """Every alert document replay writes over the samples and the scenario is byte for byte
    the golden one (same ids, same order, same fields and values), and the summary counts
    (records, events, rules, dead letters, alerts) are the same."""
    docs, summary = run_replay(tmp_path / "alerts.jsonl")
    want_docs, want_summary = golden()
    assert summary == want_summary
    got_ids = [d["event"]["id"] for d in docs]
    want_ids = [d["event"]["id"] for d in want_docs]
    assert sorted(got_ids) == sorted(want_ids), "different alert ids"
    by_id = {d["event"]["id"]: d for d in want_docs}
    for doc in docs:
        want = by_id[doc["event"]["id"]]
        # field by field first: a failure names the alert and the differing section
        for key in sorted(doc.keys() | want.keys()):
            assert doc.get(key) == want.get(key), (doc["event"]["id"], key)
        assert orjson.dumps(doc) == orjson.dumps(want), doc["event"]["id"]
    assert got_ids == want_ids, "same alerts in another order"


def write(path: Path = GOLDEN) -> None:
    """Write the golden file from a replay of the current code."""
    with tempfile.TemporaryDirectory() as tmp:
        docs, summary = run_replay(Path(tmp) / "alerts.jsonl")
    lines = [orjson.dumps(summary), *(orjson.dumps(d) for d in docs)]
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same alerts give the same bytes
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", compresslevel=9, mtime=0))
    print(f"wrote {len(docs)} alerts to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/app/test_golden_replay.py --write")
    write()
