"""``detector kibana``: the analysts' data view, saved searches and dashboard."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from detector.errors import SinkError
from detector.sinks.documents import DEFAULT_INDEX
from detector.sinks.kibana import import_saved_objects, saved_objects, to_ndjson

app = typer.Typer(help="Kibana saved objects for the alert index.", no_args_is_help=True)

IndexOption = Annotated[
    str, typer.Option("--index", help="Alert index or alias the data view covers.")
]


@app.command("export")
def export_command(
    index: IndexOption = DEFAULT_INDEX,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Print the saved objects as NDJSON (Stack Management > Saved objects > Import)."""
    text = to_ndjson(saved_objects(index))
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)


@app.command("import")
def import_command(
    url: Annotated[
        str, typer.Option("--url", envvar="DETECTOR_KIBANA__URL", help="Kibana base URL.")
    ] = "http://localhost:5601",
    index: IndexOption = DEFAULT_INDEX,
    space: Annotated[
        str | None, typer.Option(help="Kibana space id (default space if unset).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="DETECTOR_KIBANA__API_KEY", help="Encoded API key.", show_default=False
        ),
    ] = None,
    username: Annotated[str | None, typer.Option(envvar="DETECTOR_KIBANA__USERNAME")] = None,
    password: Annotated[
        str | None, typer.Option(envvar="DETECTOR_KIBANA__PASSWORD", show_default=False)
    ] = None,
) -> None:
    """Import (overwrite) the data view, saved searches and dashboard into Kibana."""
    auth = (username, password) if username and password else None
    objects = saved_objects(index)
    try:
        result = asyncio.run(
            import_saved_objects(url, objects, space=space, api_key=api_key, basic_auth=auth)
        )
    except SinkError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"imported {result.get('successCount', len(objects))} saved objects into {url}")
