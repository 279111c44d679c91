"""``detector normalize``: files or stdin to ECS JSON lines, errors as JSON lines on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import orjson
import typer

from detector.app.ingest import Ingestor, load_schemas
from detector.cli.options import SourceOption
from detector.decode import DEFAULT_MAX_BYTES, DecodeLimits, read_container
from detector.decode.avrowire import CONTAINER_MAGIC
from detector.errors import ConfigError, DecodeError
from detector.models import WIRE_FORMATS, DeadLetter, Origin, RawRecord
from detector.sources.files import (
    DEFAULT_MAX_FILE_BYTES,
    FileLimits,
    FileReadError,
    LogStream,
    expand,
    frame_records,
    read_records,
)


def normalize(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH",
            help="Files or directories (plain, .gz, S3-delivery, JSON lines, Avro); '-' is stdin.",
        ),
    ],
    *,
    source: SourceOption = "auto",
    fmt: Annotated[
        str, typer.Option("--format", "-f", help=f"Wire format: {', '.join(WIRE_FORMATS)}.")
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
    if fmt not in WIRE_FORMATS:
        raise typer.BadParameter(
            f"expected one of {', '.join(WIRE_FORMATS)}", param_hint="--format"
        )
    limits = DecodeLimits(max_bytes=max_bytes)
    try:
        store = load_schemas(schemas) if fmt != "json" else None
        ingestor = Ingestor(source=source, fmt=fmt, limits=limits, schemas=store)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="--schemas") from None

    for name in paths:
        if name != "-" and not Path(name).exists():
            raise typer.BadParameter(f"{name}: no such file or directory", param_hint="PATH")
    files = FileLimits(max_file_bytes, max_bytes, limits.max_depth)
    for name in expand(paths):
        if fmt == "json":
            _emit(ingestor, read_records(name, files))
            continue
        try:
            stream = LogStream(name, max_file_bytes)
        except FileReadError as exc:
            _report(DeadLetter("read", exc.reason, exc.detail, Origin(path=name)))
            continue
        with stream:
            _avro_or_json(ingestor, stream, name, files)
    sys.stdout.flush()


def _avro_or_json(ingestor: Ingestor, stream: LogStream, name: str, files: FileLimits) -> None:
    """An Avro container, one framed Avro message (``--format avro``), or JSON (``auto``)."""
    origin = Origin(path=name)
    try:
        if stream.peek(4) == CONTAINER_MAGIC:
            _container(ingestor, stream, name)
        elif ingestor.fmt == "avro":
            value = stream.read(files.max_record_bytes + 1)
            _emit(ingestor, [RawRecord(value, origin)])
        else:
            _emit(ingestor, frame_records(stream, name, files))
    except FileReadError as exc:
        _report(DeadLetter("read", exc.reason, exc.detail, origin))


def _emit(ingestor: Ingestor, items: Iterable[RawRecord | DeadLetter]) -> None:
    """Normalize each record: events to stdout, dead letters to stderr."""
    for item in items:
        if isinstance(item, DeadLetter):
            _report(item)
            continue
        events, dead = ingestor.ingest(item)
        for event in events:
            sys.stdout.write(orjson.dumps(event.ecs).decode() + "\n")
        for letter in dead:
            _report(letter)


def _container(ingestor: Ingestor, stream: LogStream, name: str) -> None:
    """Normalize the records of an Avro object container file as they are read."""
    number = 0
    try:
        for number, doc in enumerate(read_container(stream, ingestor.limits), start=1):
            record = RawRecord(b"", Origin(path=name, line=number))
            events, dead = ingestor.ingest_document(doc, record)
            for event in events:
                sys.stdout.write(orjson.dumps(event.ecs).decode() + "\n")
            for letter in dead:
                _report(letter)
    except DecodeError as exc:
        where = f" after record {number}" if number else ""
        _report(DeadLetter(exc.stage, exc.reason, exc.detail + where, Origin(path=name)))


def _report(letter: DeadLetter) -> None:
    sys.stderr.write(orjson.dumps(letter.as_dict()).decode() + "\n")
