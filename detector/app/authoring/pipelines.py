"""The project's pySigma processing pipelines (``detections/pipelines/*.yml``).

One source of truth for ``sigma convert -p`` and ``detector rules convert``: each maps a
log source's native field names to the ECS names of our documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline

from detector.app.authoring.rulefiles import DEFAULT_PIPELINES, yaml_files
from detector.models import LogSource


def pipeline_files(paths: Sequence[Path]) -> list[Path]:
    """The YAML pipeline files named by ``paths`` (files, or directories of ``*.yml``)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(yaml_files(path))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such pipeline file or directory")
    return files


def load_pipeline(paths: Sequence[Path]) -> ProcessingPipeline:
    """One pySigma processing pipeline from YAML pipeline files (what ``sigma convert -p``
    reads); their transformations keep their own ``rule_conditions`` (e.g. per log source).

    Raise ValueError naming the file for an invalid pipeline.
    """
    pipeline = ProcessingPipeline()
    for path in pipeline_files(paths):
        try:
            pipeline = pipeline + ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, SigmaError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: invalid processing pipeline: {exc}") from None
    return pipeline


def field_mapping(
    logsource: LogSource, paths: Sequence[Path] = (DEFAULT_PIPELINES,)
) -> dict[str, str]:
    """Native field name -> ECS field name that the pipelines apply to ``logsource`` rules."""
    mapping: dict[str, str] = {}
    for path in pipeline_files(paths):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in document.get("transformations", []):
            if item.get("type") == "field_name_mapping" and _applies(item, logsource):
                for native, ecs in item.get("mapping", {}).items():
                    if isinstance(ecs, str):
                        mapping[str(native)] = ecs
    return mapping


def _applies(item: dict[str, Any], logsource: LogSource) -> bool:
    return any(
        cond.get("type") == "logsource"
        and cond.get("product") == logsource.product
        and cond.get("service") in (None, logsource.service)
        for cond in item.get("rule_conditions", [])
    )
