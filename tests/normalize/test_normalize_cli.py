"""``detector normalize``: ECS lines on stdout, dead letters on stderr, exit 0 unless misused."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import fastavro
import orjson
import pytest
from ecs_helpers import RECORDS, ROOT, SAMPLES, fixture
from typer.testing import CliRunner

from detector.app.ingest import load_schemas
from detector.cli.main import app
from detector.decode import encode_confluent

runner = CliRunner()


def _run(*args: str, stdin: bytes | None = None) -> tuple[int, list[dict], list[dict]]:
    result = runner.invoke(app, ["normalize", *args], input=stdin)
    out = [orjson.loads(line) for line in result.stdout.splitlines() if line]
    err = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return result.exit_code, out, err


def test_plain_and_s3_delivery_files() -> None:
    """A single-record file and an S3 delivery file print one ECS object per record."""
    code, out, err = _run(
        str(RECORDS / "cloudtrail" / "sts_assumerole.json"),
        str(RECORDS / "cloudtrail" / "s3_delivery_envelope.json"),
    )
    assert code == 0
    assert not err
    assert [e["event"]["action"] for e in out] == [
        "AssumeRole",
        "GetCallerIdentity",
        "CreateAccessKey",
    ]


def test_gzip_file(tmp_path: Path) -> None:
    """Gzip-compressed input is read transparently."""
    path = tmp_path / "trail.json.gz"
    path.write_bytes(
        gzip.compress((RECORDS / "cloudtrail" / "s3_delivery_envelope.json").read_bytes())
    )
    code, out, _ = _run(str(path))
    assert code == 0
    assert len(out) == 2


def test_json_lines_with_a_bad_line(tmp_path: Path) -> None:
    """JSON lines: good lines print, the bad one is a dead letter with its line number."""
    lines = [
        orjson.dumps(fixture("vault", "kv_read_request")),
        b'{"type": "request", "time": ',
        orjson.dumps(fixture("ci", "github_repo_create")),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    code, out, err = _run(str(path))
    assert code == 0
    assert [e["event"]["dataset"] for e in out] == ["vault.audit", "github.audit"]
    assert len(err) == 1
    assert err[0]["stage"] == "decode"
    assert err[0]["reason"] == "invalid_json"
    assert err[0]["origin"] == {"path": str(path), "line": 2}


def test_otrf_sample_as_json_lines() -> None:
    """The OTRF Logstash export (JSON lines) prints all 103 events."""
    path = SAMPLES / "otrf-cloudtrail" / "ec2_proxy_s3_exfiltration_2020-09-14011940.json"
    code, out, err = _run("--source", "cloudtrail", str(path))
    assert code == 0
    assert not err
    assert len(out) == 103


def test_stdin() -> None:
    """``-`` reads standard input."""
    data = (RECORDS / "registry" / "distribution_push_envelope_multi.json").read_bytes()
    code, out, _ = _run("-", stdin=data)
    assert code == 0
    assert [e["registry"]["operation"] for e in out] == ["push"] * 3


def test_wrong_family_is_a_dead_letter_not_a_failure() -> None:
    """Forcing the wrong source rejects records on stderr but exits 0."""
    code, out, err = _run("--source", "vault", str(RECORDS / "ci" / "github_repo_create.json"))
    assert code == 0
    assert not out
    assert err[0]["stage"] == "normalize"


def test_avro_message_and_container(tmp_path: Path) -> None:
    """Avro: a Confluent-framed message file and an object container file."""
    store = load_schemas(ROOT / "schemas")
    schema = store.latest("vault")
    doc = fixture("vault", "kv_read_response")
    message = tmp_path / "one.avro"
    message.write_bytes(encode_confluent(doc, schema, store.id_of(schema)))
    container = tmp_path / "many.avro"
    buf = io.BytesIO()
    fastavro.writer(buf, schema.parsed, [schema.to_avro(doc)] * 2)
    container.write_bytes(buf.getvalue())
    code, out, err = _run(
        "--format", "avro", "--schemas", str(ROOT / "schemas"), str(message), str(container)
    )
    assert code == 0
    assert not err
    assert [e["vault"]["type"] for e in out] == ["response"] * 3


@pytest.mark.parametrize(
    "args",
    [
        ["--source", "syslog", "x.json"],
        ["--format", "xml", "x.json"],
        ["does-not-exist.json"],
        ["--format", "avro", "--schemas", "no-such-dir-here", "-"],
        [],
    ],
)
def test_usage_errors_exit_non_zero(args: list[str], tmp_path: Path) -> None:
    """Unknown source/format, missing files or schemas, no paths: usage error, exit 2."""
    result = runner.invoke(app, ["normalize", *args], input=b"")
    assert result.exit_code == 2
