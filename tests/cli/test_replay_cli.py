"""``detector replay``: files of every framing in, alerts as JSON lines and tables out."""

from __future__ import annotations

import gzip
import re
from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from detector.cli.main import app

RULE = """
title: Secret read by a person
id: 9b1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e11
status: test
description: Replay CLI test rule.
author: detector project
date: 2026-11-28
tags: [attack.credential-access, attack.t1555]
logsource: {product: aws, service: cloudtrail}
detection:
  selection:
    eventName: GetSecretValue
    userIdentity.type: IAMUser
  condition: selection
falsepositives: [none]
level: high
"""


def _record(n: int, user_type: str = "IAMUser") -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": {"type": user_type, "userName": f"user{n}", "accountId": "111122223333"},
        "eventTime": f"2026-11-28T10:{n:02d}:00Z",
        "eventSource": "secretsmanager.amazonaws.com",
        "eventName": "GetSecretValue",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2",
        "requestParameters": {"secretId": "prod/db"},
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }


def _row(output: str, label: str) -> int:
    """The number in the summary table's row ``label``."""
    match = re.search(rf"│ {label}\s*│\s*(\d+) │", output)
    assert match, f"no summary row {label!r} in:\n{output}"
    return int(match.group(1))


def test_replay_reads_every_framing_writes_alerts_and_counts_dead_letters(tmp_path: Path) -> None:
    """An S3-delivery .gz file and a JSON-lines file with one broken line: the matching
    records become alerts in --output (ECS alert documents), the broken line is counted
    as a dead letter, and the summary says so."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rule.yml").write_text(RULE)
    logs = tmp_path / "logs"
    logs.mkdir()
    delivery = {"Records": [_record(1), _record(2, "AWSService")]}
    (logs / "trail.json.gz").write_bytes(gzip.compress(orjson.dumps(delivery)))
    lines = [
        orjson.dumps(_record(3)),
        b'{"eventName": "GetSecretValue", ',
        orjson.dumps(_record(4)),
    ]
    (logs / "more.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "alerts.jsonl"

    result = CliRunner().invoke(
        app, ["replay", "--rules", str(rules), "--output", str(out), str(logs)]
    )

    assert result.exit_code == 0, result.output
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(d["user"]["name"] for d in docs) == ["user1", "user3", "user4"]
    assert {d["event"]["kind"] for d in docs} == {"alert"}
    assert {d["rule"]["id"] for d in docs} == {"9b1f0c53-3f0e-4c1b-8d0a-0d8f6a5c2e11"}
    assert all(d["kibana"]["alert"]["reason"] for d in docs)
    assert "dead letters" in result.output
    assert _row(result.output, "dead letters") == 1
    assert _row(result.output, "state evictions") == 0
    assert "Secret read by a person" in result.output


def test_replay_prints_rejected_rules_and_still_runs_the_rest(tmp_path: Path) -> None:
    """A rule the engine rejects is printed with its file; the other rules still run."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(RULE)
    (rules / "bad.yml").write_text(
        RULE.replace("9b1f0c53", "1b1f0c53").replace(
            "eventName: GetSecretValue", "eventName|re: '(?<=x)y'"
        )
    )
    (tmp_path / "t.jsonl").write_bytes(orjson.dumps(_record(5)) + b"\n")

    result = CliRunner().invoke(app, ["replay", "--rules", str(rules), str(tmp_path / "t.jsonl")])

    assert result.exit_code == 0, result.output
    assert "bad.yml" in result.output
    assert _row(result.output, "rules rejected") == 1
    assert _row(result.output, "alerts") == 1
