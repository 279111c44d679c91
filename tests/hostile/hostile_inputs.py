"""Generators of hostile inputs (at any size) and a peak-memory probe for the CLI.

Each generator writes what the issue's campaign fed the detector: envelopes full of
broken records, JSON lines with a bad first line, concatenated gzip members, gzip and
Avro deflate bombs, Avro containers that declare billions of records, rule files that
nest, loop or weigh megabytes. Sizes are parameters so the same input runs small in CI
and large in the opt-in run (``DETECTOR_HOSTILE_LARGE=1``).
"""

from __future__ import annotations

import gzip
import io
import os
import resource
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

#: Peak resident memory that every hostile input must stay under (docs/hostile-input.md).
CEILING_MIB = 512
#: Set to 1 to run the large variants (tests/hostile/test_large_inputs.py).
LARGE = os.environ.get("DETECTOR_HOSTILE_LARGE") == "1"

RULE = """\
title: Caller identity checked
id: 5f0c8a52-8a34-4a4e-9a57-6b1f2f0e7d11
status: experimental
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: GetCallerIdentity
    condition: selection
level: low
"""


def cloudtrail(n: int, **changes: Any) -> dict[str, Any]:
    """A valid CloudTrail record, number ``n`` (its own event id and second)."""
    record: dict[str, Any] = {
        "eventVersion": "1.08",
        "eventTime": f"2025-03-01T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "eventSource": "sts.amazonaws.com",
        "eventName": "GetCallerIdentity",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "userIdentity": {
            "type": "IAMUser",
            "userName": "alice",
            "arn": "arn:aws:iam::111122223333:user/alice",
            "accountId": "111122223333",
        },
        "eventID": f"00000000-0000-4000-8000-{n:012d}",
        "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
    }
    record.update(changes)
    return record


def jsonl(records: int, start: int = 0) -> bytes:
    """``records`` CloudTrail records as JSON lines."""
    return b"".join(orjson.dumps(cloudtrail(start + i)) + b"\n" for i in range(records))


def records_of_zeros(count: int) -> bytes:
    """An S3-delivery document whose ``Records`` are ``count`` zeros (none an object)."""
    return b'{"Records":[' + b",".join([b"0"] * count) + b"]}"


def distribution_of_empties(count: int) -> bytes:
    """A Distribution notification envelope of ``count`` empty events."""
    return b'{"events":[' + b",".join([b"{}"] * count) + b"]}"


def gzip_members(*parts: bytes) -> bytes:
    """One gzip member per part, concatenated (``cat a.gz b.gz``)."""
    return b"".join(gzip.compress(part) for part in parts)


def gzip_stream(pattern: bytes, size: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    """gzip of ``head + pattern * n + tail`` inflating to about ``size`` bytes, built
    without holding the inflated bytes."""
    out = io.BytesIO()
    block = pattern * max(1, (1 << 20) // len(pattern))
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as fh:
        fh.write(head)
        written = 0
        while written + len(block) <= size:
            fh.write(block)
            written += len(block)
        fh.write(pattern * ((size - written) // len(pattern)))
        fh.write(tail)
    return out.getvalue()


def bracket_bomb(size: int) -> bytes:
    """gzip of one JSON array ``[{},{},...]`` of about ``size`` bytes."""
    return gzip_stream(b"{},", size, head=b"[", tail=b"{}]")


def zero_bomb(size: int) -> bytes:
    """gzip of ``size`` zero digits (one line, no JSON)."""
    return gzip_stream(b"0", size)


def _long(value: int) -> bytes:
    """Avro ``long``: zig-zag varint."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def avro_bytes(value: bytes) -> bytes:
    """Avro ``bytes``/``string``: length, then the bytes."""
    return _long(len(value)) + value


SYNC = b"0123456789abcdef"


def avro_container(schema: dict[str, Any], blocks: list[tuple[int, bytes]], codec: str) -> bytes:
    """An Avro object container file from raw blocks ``(declared count, block bytes)``."""
    meta = {"avro.schema": orjson.dumps(schema), "avro.codec": codec.encode()}
    out = bytearray(b"Obj\x01")
    out += _long(len(meta))
    for key, value in meta.items():
        out += avro_bytes(key.encode()) + avro_bytes(value)
    out += _long(0) + SYNC
    for count, data in blocks:
        out += _long(count) + avro_bytes(data) + SYNC
    return bytes(out)


EMPTY_SCHEMA = {"type": "record", "name": "Empty", "fields": []}
REST_SCHEMA = {
    "type": "record",
    "name": "Rest",
    "fields": [{"name": "rest", "type": "string", "x-rest": True}],
}


def avro_empty_records(count: int) -> bytes:
    """A container of a few bytes declaring ``count`` empty records (no bytes each)."""
    return avro_container(EMPTY_SCHEMA, [(count, b"")], "null")


def avro_deflate_bomb(inflated: int) -> bytes:
    """A container whose one deflate block inflates to ``inflated`` zero bytes."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    data = bytearray()
    for _ in range(inflated // len(chunk)):
        data += deflater.compress(chunk)
    data += deflater.compress(b"\0" * (inflated % len(chunk))) + deflater.flush()
    return avro_container(REST_SCHEMA, [(1, bytes(data))], "deflate")


def deep_yaml(depth: int) -> str:
    """A rule file whose ``detection`` nests ``depth`` flow sequences."""
    return RULE.replace("level: low", "level: low\nextra: " + "[" * depth + "]" * depth)


def big_rule(size: int) -> str:
    """A valid-looking rule file padded with a long description to ``size`` bytes."""
    pad = max(0, size - len(RULE) - 32)
    return RULE.replace("status:", "description: '" + "x" * pad + "'\nstatus:")


@dataclass(frozen=True)
class Run:
    """One CLI run: exit status, output and the peak resident memory of its process."""

    code: int
    stdout: bytes
    stderr: bytes
    peak_mib: float


_PROBE = """\
import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
with open(sys.argv[1], "w") as fh:
    fh.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_cli(tmp: Path, *args: str) -> Run:
    """Run ``detector ARGS`` in a fresh process and measure its peak RSS (``ru_maxrss`` of
    the only child of a small probe process, so the test process does not count)."""
    return run_python(tmp, "from detector.cli.main import app; app()", *args)


def run_python(tmp: Path, code: str, *args: str) -> Run:
    """Run ``python -c CODE ARGS`` in a fresh process and measure its peak RSS."""
    peak_file = tmp / f"peak-{os.getpid()}-{len(list(tmp.iterdir()))}.txt"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(peak_file), sys.executable, "-c", code, *args],
        capture_output=True,
        check=False,
        timeout=600,
    )
    kib = int(peak_file.read_text())
    return Run(done.returncode, done.stdout, done.stderr, kib / 1024)


def stderr_letters(run: Run) -> list[dict[str, Any]]:
    """The dead letters a ``detector normalize`` run printed (JSON lines on stderr)."""
    return [orjson.loads(line) for line in run.stderr.splitlines() if line.startswith(b"{")]


def own_peak_mib() -> float:
    """Peak RSS of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
