"""A bad rule costs only itself, in ``rules validate``, ``replay`` and the service alike."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hostile_inputs import RULE, big_rule, cloudtrail, deep_yaml, run_cli

from detector.app.pipeline import Pipeline
from detector.app.service import load_ruleset
from detector.app.settings import DetectorSettings
from detector.detect import load_rules
from detector.errors import RuleLoadError
from detector.models import RawRecord
from detector.sources.files import read_records

CORRELATION = """\
title: {title}
id: {id}
name: {name}
status: experimental
correlation:
    type: event_count
    rules:
{refs}
    group-by:
        - user.name
    timespan: 5m
    condition:
        gte: 2
level: high
"""


def _correlation(title: str, ident: str, name: str, *refs: str) -> str:
    lines = "\n".join(f"        - {ref}" for ref in refs)
    return CORRELATION.format(title=title, id=ident, name=name, refs=lines)


def _bad_rules(folder: Path) -> dict[str, str]:
    """A folder with one good rule and one file per hostile case; file -> expected reason."""
    folder.mkdir()
    (folder / "good.yml").write_text(RULE)
    (folder / "self.yml").write_text(
        _correlation("Self loop", "11111111-1111-4111-8111-111111111111", "self_loop", "self_loop")
    )
    (folder / "cycle.yml").write_text(
        _correlation("Cycle A", "22222222-2222-4222-8222-222222222222", "cycle_a", "cycle_b")
        + "---\n"
        + _correlation("Cycle B", "33333333-3333-4333-8333-333333333333", "cycle_b", "cycle_a")
    )
    (folder / "deep.yml").write_text(deep_yaml(5_000))
    (folder / "big.yml").write_text(big_rule(2 << 20))
    return {
        "self.yml": "reference cycle",
        "cycle.yml": "reference cycle",
        "deep.yml": "nested too deeply",
        "big.yml": "over the limit of 1048576 bytes",
    }


def _events(tmp_path: Path) -> Path:
    path = tmp_path / "trail.jsonl"
    path.write_bytes(b"".join(orjson.dumps(cloudtrail(n)) + b"\n" for n in range(3)))
    return path


def test_validate_names_every_bad_file_and_loads_the_good_rule(tmp_path: Path) -> None:
    """``rules validate`` reports each bad file with its reason (no traceback)."""
    expected = _bad_rules(tmp_path / "rules")
    ruleset = load_rules([tmp_path / "rules"])
    assert [r.info.title for r in ruleset.rules] == ["Caller identity checked"]
    assert not ruleset.correlations
    run = run_cli(tmp_path, "rules", "validate", str(tmp_path / "rules"))
    text = run.stdout.decode() + run.stderr.decode()
    assert "Traceback" not in text
    for name, reason in expected.items():
        assert any(name in line and reason in line for line in text.splitlines()), name
    assert "1 rule(s) loaded" in text


def test_replay_runs_the_other_rules(tmp_path: Path) -> None:
    """``replay`` with the same folder: the bad files are listed as rejected, the good
    rule fires on every event (it crashed with a traceback: 0 alerts)."""
    _bad_rules(tmp_path / "rules")
    out = tmp_path / "alerts.jsonl"
    run = run_cli(
        tmp_path,
        "replay",
        "--rules",
        str(tmp_path / "rules"),
        "-o",
        str(out),
        str(_events(tmp_path)),
    )
    assert run.code == 0, run.stderr.decode()[-2000:]
    assert run.stderr.count(b"rejected") >= 4
    assert len(out.read_bytes().splitlines()) == 3


def test_service_starts_with_the_other_rules(tmp_path: Path) -> None:
    """The service's rule loading keeps the good rule and its pipeline runs (the engine
    refused the whole set); with no good rule left, start-up still stops."""
    _bad_rules(tmp_path / "rules")
    ruleset = load_ruleset(DetectorSettings(rules={"paths": [tmp_path / "rules"]}))
    pipeline = Pipeline(ruleset)
    records = [r for r in read_records(str(_events(tmp_path))) if isinstance(r, RawRecord)]
    events, _ = pipeline.ingest(records)
    assert len(pipeline.detect(events)) == 3
    (tmp_path / "rules" / "good.yml").unlink()
    with pytest.raises(RuleLoadError):
        load_ruleset(DetectorSettings(rules={"paths": [tmp_path / "rules"]}))


def test_rule_file_size_limit_is_configurable(tmp_path: Path) -> None:
    """A 2 MiB rule file is refused unread by default and loads under a higher limit."""
    path = tmp_path / "big.yml"
    path.write_text(big_rule(2 << 20))
    (error,) = load_rules([path]).errors
    assert error.path == str(path) and "over the limit" in str(error)
    assert len(load_rules([path], max_file_bytes=4 << 20).rules) == 1


def test_rule_file_size_limit_is_a_setting(tmp_path: Path) -> None:
    """``rules.max_file_bytes`` raises the limit for the service and for ``replay``."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "big.yml").write_text(big_rule(2 << 20))
    settings = DetectorSettings(rules={"paths": [rules], "max_file_bytes": 4 << 20})
    assert len(load_ruleset(settings).rules) == 1
    config = tmp_path / "detector.yaml"
    config.write_text(f"rules:\n  paths: [{rules}]\n  max_file_bytes: {4 << 20}\n")
    out = tmp_path / "alerts.jsonl"
    run = run_cli(tmp_path, "replay", "-c", str(config), "-o", str(out), str(_events(tmp_path)))
    assert run.code == 0, run.stderr.decode()[-2000:]
    assert b"rejected" not in run.stderr
    assert len(out.read_bytes().splitlines()) == 3
