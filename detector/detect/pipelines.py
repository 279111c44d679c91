"""Processing pipelines: native field names to the ECS fields of detector's documents.

The pipelines are pySigma YAML files in ``detections/pipelines/`` (one per native source,
plus ``ecs.yml`` for ``product: ecs`` rules), the single source of truth for both:

- sigma-cli, to convert rules into queries over the ECS documents detector writes::

    sigma convert -t lucene -p detections/pipelines/cloudtrail.yml RULE.yml

- detector itself: :func:`processing_pipeline` loads them for pySigma conversions, and
  :func:`field_mapping` gives the native -> ECS name map of one log source (e.g. to
  show or group native fields under their ECS names).

The engine does not need them to evaluate rules: native rules read native records.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from sigma.processing.pipeline import ProcessingPipeline

from detector.models import LogSource

#: ``detections/pipelines`` of the repository (the package's parent directory).
PIPELINE_DIR = Path(__file__).resolve().parents[2] / "detections" / "pipelines"


def pipeline_files(directory: Path | None = None) -> list[Path]:
    """The pipeline YAML files, sorted by name."""
    return sorted((directory or PIPELINE_DIR).glob("*.yml"))


def processing_pipeline(
    names: Sequence[str] | None = None, directory: Path | None = None
) -> ProcessingPipeline:
    """The named pipelines (file stems such as ``cloudtrail``; default all) as one pipeline.

    Every transformation is conditioned on its log source, so combining them is safe.
    """
    files = pipeline_files(directory)
    if names is not None:
        by_name = {f.stem: f for f in files}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise KeyError(f"no pipeline named {', '.join(missing)} in {directory or PIPELINE_DIR}")
        files = [by_name[n] for n in names]
    combined = ProcessingPipeline()
    for path in files:
        combined = combined + ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
    return combined


def field_mapping(logsource: LogSource, directory: Path | None = None) -> dict[str, str]:
    """Native field name -> ECS field name for rules of ``logsource`` (empty if none)."""
    mapping: dict[str, str] = {}
    for path in pipeline_files(directory):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in document.get("transformations", []):
            if item.get("type") == "field_name_mapping" and _for(item, logsource):
                for native, ecs in item.get("mapping", {}).items():
                    if isinstance(ecs, str):
                        mapping[str(native)] = ecs
    return mapping


def _for(item: dict[str, Any], logsource: LogSource) -> bool:
    for cond in item.get("rule_conditions", []):
        if (
            cond.get("type") == "logsource"
            and cond.get("product") == logsource.product
            and cond.get("service") in (None, logsource.service)
        ):
            return True
    return False
