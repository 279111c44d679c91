"""The configuration reference, generated from the settings models (``detector config reference``).

Every section is a pydantic model; this walks :class:`DetectorSettings` and writes one
Markdown table per model: key, type, default, environment variable and description. A
description is the field's ``description`` or its ``#:`` comment in the model's source
(the Sphinx convention the settings modules follow); a section's text is its docstring.
``docs/configuration.md`` holds the output and a test keeps the two equal.
"""

from __future__ import annotations

import inspect
import json
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import NoDecode

from detector.app.settings import DetectorSettings

PREFIX = "DETECTOR_"

INTRODUCTION = """\
# Configuration reference

Generated from the settings models by `detector config reference`; do not edit by hand
(`tests/app/test_reference.py` fails when this page and the code differ).

Settings come from, highest precedence first: the environment, then the YAML file named by
`--config` (or `DETECTOR_CONFIG`), then the defaults below. `detector config show --config
FILE` prints the effective settings with secrets redacted.

- **Environment.** `DETECTOR_` + the key path in capitals, `__` between levels:
  `rules.paths` is `DETECTOR_RULES__PATHS`. Lists, dicts and sections take JSON
  (`DETECTOR_RULES__PATHS='["detections/rules"]'`); lists marked *or comma-separated*
  also take `a,b` text (`DETECTOR_RULES__DISABLED=rule-a,rule-b`).
- **Relative paths.** A relative path written in the YAML file is relative to the folder of
  that file, wherever `detector` starts: with `rules.paths: [rules]` in
  `/etc/detector/detector.yaml`, rules load from `/etc/detector/rules`. A relative path from
  the environment or a default (`detections/rules`, `schemas`) is relative to the working
  directory, which is the repository root for the demo and `/app` in the container image.
  This holds for every key of type *path*.
- **Secrets** (type *secret*) are never printed by `config show`; most have a `*_file`
  twin that reads the value from a file (for Kubernetes secrets).
- A section whose default is *off* is disabled until it is given.
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One key of a section."""

    key: str
    type: str
    default: str
    env: str
    description: str


@dataclass(frozen=True, slots=True)
class Section:
    """One settings model at one place in the tree."""

    path: str
    text: str
    rows: tuple[Row, ...]


def reference_markdown() -> str:
    """The whole reference page."""
    parts = [INTRODUCTION]
    for section in sections(DetectorSettings):
        parts.append(f"\n## `{section.path}`\n" if section.path else "\n## Top level\n")
        if section.text:
            parts.append(f"\n{section.text}\n")
        parts.append("\n| key | type | default | environment | description |\n")
        parts.append("|---|---|---|---|---|\n")
        for r in section.rows:
            cells = (f"`{r.key}`", r.type, r.default, f"`{r.env}`", r.description)
            parts.append("| " + " | ".join(_cell(c) for c in cells) + " |\n")
    return "".join(parts)


def sections(model: type[BaseModel], path: str = "") -> Iterator[Section]:
    """The section of ``model`` at ``path`` (dotted keys), then its nested sections."""
    comments = field_comments(model)
    rows: list[Row] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        children = [
            (key + (".<name>" if _is_mapping(info.annotation) else ""), child)
            for child in _models(info.annotation)
        ]
        described = info.description or comments.get(name, "")
        if not described and children:
            described = "See " + ", ".join(f"`{k}`" for k, _ in children) + "."
        kind = type_name(info.annotation)
        if any(isinstance(m, NoDecode) or m is NoDecode for m in info.metadata):
            kind += " (or comma-separated)"
        rows.append(
            Row(
                key=name,
                type=kind,
                default=default_text(info),
                env=PREFIX + key.replace(".", "__").upper(),
                description=described.strip(),
            )
        )
        nested.extend(children)
    if rows:
        yield Section(path, _docstring(model), tuple(rows))
    for key, child in nested:
        yield from sections(child, key)


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """``#:`` comments above the fields of ``model`` and of the models it inherits from."""
    comments: dict[str, str] = {}
    for klass in reversed(model.__mro__):
        if not issubclass(klass, BaseModel) or klass is BaseModel:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source (frozen or compiled): descriptions stay empty
            continue
        pending: list[str] = []
        for line in source.splitlines():
            text = line.strip()
            field = re.match(r"(\w+)\s*:", text)
            if text.startswith("#:"):
                pending.append(text[2:].strip())
            elif field and pending:
                comments[field.group(1)] = " ".join(pending)
                pending = []
            else:
                pending = []
    return comments


def type_name(annotation: Any) -> str:
    """A short readable name of a field type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is Path:
        return "path"
    if annotation is SecretStr:
        return "secret"
    if annotation is type(None):
        return "none"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        named = " or ".join(type_name(a) for a in members)
        return f"{named} (optional)" if len(members) < len(args) else named
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {type_name(args[1])}" if len(args) == 2 else "map"
    return str(annotation)


def default_text(info: FieldInfo) -> str:
    """The default as the YAML user would write it; ``off`` for an absent section."""
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "off" if any(True for _ in _models(info.annotation)) else "none"
    if isinstance(value, BaseModel):
        return "(section below)"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, list) and len(value) > 6:
        return f"{len(value)} items (`detector config show`)"
    return f"`{json.dumps(_plain(value))}`"


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def _models(annotation: Any) -> Iterator[type[BaseModel]]:
    """The settings models inside a field type (itself, optional, list or dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models(arg)


def _is_mapping(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is dict:
        return True
    return origin in (Union, types.UnionType) and any(_is_mapping(a) for a in get_args(annotation))


def _docstring(model: type[BaseModel]) -> str:
    doc = model.__doc__
    if not doc or doc == BaseModel.__doc__:
        return ""
    return inspect.cleandoc(doc)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if "\\|" not in text else text
