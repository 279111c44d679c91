"""Options several commands share, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from detector.models import SOURCES


def _check_source(value: str) -> str:
    if value not in SOURCES:
        raise typer.BadParameter(f"expected one of {', '.join(SOURCES)}")
    return value


#: ``--source``: the source family of the records, or ``auto`` (from each record's shape).
SourceOption = Annotated[
    str,
    typer.Option(
        "--source",
        "-s",
        help=f"Source family, or auto to tell it from each record: {', '.join(SOURCES)}.",
        callback=_check_source,
    ),
]
