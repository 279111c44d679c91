"""The processing pipelines (detections/pipelines) work in sigma-cli and match the normalizer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sigma.processing.pipeline import ProcessingPipeline

from detector.app.authoring import field_mapping, load_pipeline, pipeline_files
from detector.detect.fields import MISSING, getter
from detector.detect.logsources import NATIVE
from detector.models import LogSource
from detector.normalize import Normalizer

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIR = ROOT / "detections" / "pipelines"
SIGMA = Path(sys.executable).parent / "sigma"
FIXTURES = ROOT / "tests" / "fixtures" / "records"


def _convert(rule: Path, *pipelines: str) -> str:
    args = [str(SIGMA), "convert", "-t", "lucene"]
    for name in pipelines:
        args += ["-p", str(PIPELINE_DIR / f"{name}.yml")]
    done = subprocess.run(
        [*args, str(rule)], capture_output=True, text=True, check=True, timeout=120
    )
    return done.stdout.strip()


def test_every_pipeline_file_loads_in_pysigma() -> None:
    """Each YAML file is a valid pySigma pipeline; there is one per native source plus ecs."""
    files = pipeline_files([PIPELINE_DIR])
    names = {p.stem for p in files}
    assert names == {"cloudtrail", "github", "gitlab", "vault", "distribution", "harbor", "ecs"}
    for path in files:
        assert ProcessingPipeline.from_yaml(path.read_text()).items
    assert len(load_pipeline([PIPELINE_DIR]).items) == sum(
        len(ProcessingPipeline.from_yaml(p.read_text()).items) for p in files
    )
    with pytest.raises(ValueError, match="no such pipeline"):
        load_pipeline([PIPELINE_DIR / "nope.yml"])


def test_every_native_source_has_a_mapping() -> None:
    """Every native log source of the event contract maps at least its action/user fields."""
    for logsource in NATIVE:
        assert field_mapping(logsource, [PIPELINE_DIR]), logsource
    assert field_mapping(LogSource("windows", "security"), [PIPELINE_DIR]) == {}


def test_sigma_cli_converts_a_sigmahq_rule_to_ecs_fields(sigmahq_dir: Path) -> None:
    """sigma-cli with the CloudTrail pipeline targets ECS names and the CloudTrail dataset."""
    rule = sigmahq_dir / "aws/cloudtrail/aws_cloudtrail_disable_logging.yml"
    query = _convert(rule, "cloudtrail")
    assert query.startswith("event.dataset:aws.cloudtrail AND ")
    assert "event.provider:cloudtrail.amazonaws.com" in query
    assert "event.action:" in query
    assert "eventName" not in query and "eventSource" not in query


def test_sigma_cli_narrows_ecs_rules_by_family(tmp_path: Path) -> None:
    """An ECS rule with ``service: ci`` is narrowed to the GitHub and GitLab datasets."""
    rule = tmp_path / "r.yml"
    rule.write_text(
        "title: t\nid: 5d5b1f36-3c31-4a43-9c59-9b0b7a5ad0c1\n"
        "logsource:\n    product: ecs\n    service: ci\n"
        "detection:\n    sel:\n        user.name: alice\n    condition: sel\n"
    )
    query = _convert(rule, "ecs", "cloudtrail", "github")
    assert "event.dataset:(github.audit OR gitlab.audit)" in query
    assert "user.name:alice" in query


def test_mapped_fields_exist_in_normalized_events() -> None:
    """For every fixture record, each mapped native field it has is present in its ECS doc.

    This ties the pipelines to the normalizer: a query converted with the pipelines
    searches fields the ECS documents really hold.
    """
    normalizer = Normalizer("auto")
    checked = 0
    missing: list[str] = []
    for path in sorted(FIXTURES.rglob("*.json")):
        events, _ = normalizer.normalize(orjson.loads(path.read_bytes()))
        for ev in events:
            for native, ecs in field_mapping(ev.logsource, [PIPELINE_DIR]).items():
                value = getter(native)(ev.raw)
                if value is MISSING or value in (None, "") or isinstance(value, dict | list):
                    continue
                checked += 1
                if getter(ecs)(ev.ecs) is MISSING:
                    missing.append(f"{path.name}: {native} -> {ecs}")
    assert checked > 300
    assert missing == []
