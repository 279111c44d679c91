"""``detector normalize``: files or stdin to ECS JSON lines, errors as JSON lines on stderr."""

from __future__ import annotations

import gzip
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from detector.app.ingest import FORMATS, Ingestor, load_schemas
from detector.decode import DEFAULT_MAX_BYTES, DecodeLimits, decode_json, read_container
from detector.decode.avrowire import CONTAINER_MAGIC
from detector.errors import ConfigError, DecodeError
from detector.models import DeadLetter, Origin, RawRecord
from detector.normalize import SOURCES

#: A whole file (e.g. an S3 delivery of CloudTrail) may exceed the per-record limit.
DEFAULT_MAX_FILE_BYTES = 512 << 20


def _read(name: str, max_file_bytes: int) -> bytes:
    """The bytes of a path or of stdin (``-``), gunzipped when gzip-compressed."""
    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        path = Path(name)
        if not path.is_file():
            raise typer.BadParameter(f"{name}: no such file", param_hint="PATH")
        data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            # Bounded inflate: a small .gz can expand without limit.
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            data = inflater.decompress(data, max_file_bytes + 1)
        except zlib.error as exc:
            raise gzip.BadGzipFile(str(exc)) from None
    return data


def _records(data: bytes, path: str, fmt: str, limits: DecodeLimits) -> Iterator[RawRecord]:
    """One whole-file record, or one record per line for JSON-lines input."""
    whole = RawRecord(data, Origin(path=path))
    if fmt == "avro" or not data.strip():
        yield whole
        return
    try:
        decode_json(data, DecodeLimits(max_bytes=max(len(data), 1), max_depth=limits.max_depth))
    except DecodeError:
        lines = data.splitlines()
        first = next((line for line in lines if line.strip()), b"")
        try:
            decode_json(first, limits)
        except DecodeError:
            yield whole  # not JSON lines either: one dead letter for the file
            return
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield RawRecord(line, Origin(path=path, line=number))
        return
    yield whole


def normalize(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="Files (plain, .gz, S3-delivery, JSON lines, Avro); '-' reads stdin.",
        ),
    ],
    *,
    source: Annotated[
        str, typer.Option("--source", "-s", help=f"Source family: {', '.join(SOURCES)}.")
    ] = "auto",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="Wire format: json, avro or auto.")
    ] = "json",
    schemas: Annotated[
        Path, typer.Option("--schemas", help="Avro schema directory (with registry.yaml).")
    ] = Path("schemas"),
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", min=1, help="Size limit of one record in bytes.")
    ] = DEFAULT_MAX_BYTES,
    max_file_bytes: Annotated[
        int, typer.Option("--max-file-bytes", min=1, help="Size limit of one whole file.")
    ] = DEFAULT_MAX_FILE_BYTES,
) -> None:
    """Normalize records to ECS: one JSON object per line on stdout, errors on stderr.

    Files holding one JSON document (a record, an S3 delivery ``{"Records": [...]}``,
    an EventBridge event, a Distribution envelope, a JSON array) are read whole; other
    files are read as JSON lines. Avro input is an object container file or one
    Confluent/single-object framed message per file. Bad records never stop the run:
    they are reported as dead-letter records and the exit status stays 0.
    """
    if source not in SOURCES:
        raise typer.BadParameter(f"expected one of {', '.join(SOURCES)}", param_hint="--source")
    if fmt not in FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(FORMATS)}", param_hint="--format")
    limits = DecodeLimits(max_bytes=max_bytes)
    try:
        store = load_schemas(schemas) if fmt != "json" else None
        ingestor = Ingestor(source=source, fmt=fmt, limits=limits, schemas=store)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--schemas") from None

    out = sys.stdout
    for name in paths:
        try:
            data = _read(name, max_file_bytes)
        except (OSError, gzip.BadGzipFile) as exc:
            _report(DeadLetter("decode", "unreadable", str(exc), Origin(path=name)))
            continue
        if len(data) > max_file_bytes:
            detail = f"more than {max_file_bytes} bytes"
            _report(DeadLetter("decode", "too_large", detail, Origin(path=name)))
            continue
        if fmt != "json" and data[:4] == CONTAINER_MAGIC:
            _container(ingestor, data, name, limits)
            continue
        for record in _records(data, name, fmt, limits):
            events, dead = ingestor.ingest(record)
            for event in events:
                out.write(orjson.dumps(event.ecs).decode())
                out.write("\n")
            for letter in dead:
                _report(letter)
    out.flush()


def _container(ingestor: Ingestor, data: bytes, name: str, limits: DecodeLimits) -> None:
    """Normalize every record of an Avro object container file."""
    whole = RawRecord(b"", Origin(path=name))
    docs: list[dict[str, Any]] = []
    try:
        docs.extend(read_container(data, limits))
    except DecodeError as exc:
        _report(DeadLetter(exc.stage, exc.reason, exc.detail, whole.origin))
    for number, doc in enumerate(docs, start=1):
        record = RawRecord(b"", Origin(path=name, line=number))
        events, dead = ingestor.ingest_document(doc, record)
        for event in events:
            sys.stdout.write(orjson.dumps(event.ecs).decode() + "\n")
        for letter in dead:
            _report(letter)


def _report(letter: DeadLetter) -> None:
    sys.stderr.write(orjson.dumps(letter.as_dict()).decode() + "\n")
