"""JsonLinesSink: alert documents as JSON lines, at most once per alert id per file."""

from __future__ import annotations

import json
from pathlib import Path

from sink_support import make_alert

from detector.models import Sink
from detector.sinks import JsonLinesSink, JsonLinesSinkConfig


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["event"]["id"] for line in path.read_text().splitlines()]


async def test_rerun_over_the_same_file_appends_only_new_alerts(tmp_path: Path) -> None:
    """A second sink on the same file skips ids already there (a re-run does not duplicate)."""
    path = tmp_path / "out" / "alerts.jsonl"
    a, b, c = make_alert(1), make_alert(2), make_alert(3)
    first = JsonLinesSink(JsonLinesSinkConfig(path=path))
    assert isinstance(first, Sink)
    await first.write([a, b])
    await first.write([b])
    await first.close()
    second = JsonLinesSink(JsonLinesSinkConfig(path=path, fsync=False))
    await second.write([a, b, c])
    assert _ids(path) == [a.id, b.id, c.id]
    doc = json.loads(path.read_text().splitlines()[0])
    expected = json.loads(json.dumps(a.to_document()))
    expected["event"]["created"] = doc["event"]["created"]  # the write time
    assert doc == expected
    assert doc["kibana"]["alert"]["uuid"] == a.id


async def test_torn_last_line_is_closed_off_before_appending(tmp_path: Path) -> None:
    """After a crash mid-line, new alerts start on their own line and the torn one is ignored."""
    path = tmp_path / "alerts.jsonl"
    a, b = make_alert(1), make_alert(2)
    sink = JsonLinesSink(JsonLinesSinkConfig(path=path))
    await sink.write([a])
    with path.open("ab") as fh:
        fh.write(b'{"event": {"id": "torn')
    await JsonLinesSink(JsonLinesSinkConfig(path=path)).write([a, b])
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[0])["event"]["id"] == a.id
    assert json.loads(lines[2])["event"]["id"] == b.id
