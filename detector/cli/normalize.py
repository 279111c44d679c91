"""``detector normalize``: files or stdin to ECS JSON lines, errors as JSON lines on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from detector.app.ingest import Ingestor, load_schemas
from detector.decode import DEFAULT_MAX_BYTES, DecodeLimits, read_container
from detector.decode.avrowire import CONTAINER_MAGIC
from detector.errors import ConfigError, DecodeError
from detector.models import SOURCES, WIRE_FORMATS, DeadLetter, Origin, RawRecord
from detector.sources.files import (
    DEFAULT_MAX_FILE_BYTES,
    FileReadError,
    expand,
    read_file,
    split_records,
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
    source: Annotated[
        str, typer.Option("--source", "-s", help=f"Source family: {', '.join(SOURCES)}.")
    ] = "auto",
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
    if source not in SOURCES:
        raise typer.BadParameter(f"expected one of {', '.join(SOURCES)}", param_hint="--source")
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
    out = sys.stdout
    for name in expand(paths):
        try:
            data = read_file(name, max_file_bytes)
        except FileReadError as exc:
            _report(DeadLetter("read", exc.reason, exc.detail, Origin(path=name)))
            continue
        if fmt != "json" and data[:4] == CONTAINER_MAGIC:
            _container(ingestor, data, name, limits)
            continue
        records = (
            [RawRecord(data, Origin(path=name))]
            if fmt == "avro"
            else split_records(data, name, limits.max_depth)
        )
        for record in records:
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
