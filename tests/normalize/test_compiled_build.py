"""The compiled build (mypyc, see setup.py) behaves exactly like the interpreted sources.

``scripts/compiled pytest tests/normalize`` runs this against the compiled install with
``DETECTOR_EXPECT_COMPILED=1``; the interpreted side is the same sources imported in a
child process. In the editable development install both sides are interpreted, so the
comparison is skipped there and only the build check applies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from compiled_support import answers, cases

import detector.decode
import detector.normalize

REPO = Path(__file__).resolve().parents[2]
HOT_PATH = (detector.decode, detector.normalize)


def _compiled_modules() -> dict[str, bool]:
    """Each module of decode and normalize, and whether it runs compiled."""
    out: dict[str, bool] = {}
    for package in HOT_PATH:
        for path in sorted(Path(package.__path__[0]).iterdir()):
            if path.suffix in (".py", ".so", ".pyd") and not path.name.startswith("_"):
                name = f"{package.__name__}.{path.name.split('.')[0]}"
                module = sys.modules.get(name) or __import__(name, fromlist=["_"])
                out[name] = not str(module.__file__).endswith(".py")
    return out


def test_build_is_the_expected_one() -> None:
    """Every module of the hot path is compiled (or not) as the environment says it must be."""
    expected = os.environ.get("DETECTOR_EXPECT_COMPILED")
    modules = _compiled_modules()
    assert modules, "no modules found in detector.decode / detector.normalize"
    if expected == "1":
        interpreted = [name for name, compiled in modules.items() if not compiled]
        assert not interpreted, f"expected a compiled build, these are interpreted: {interpreted}"
        assert detector.normalize.COMPILED
    elif expected == "0":
        assert not any(modules.values()) and not detector.normalize.COMPILED
    else:
        # Either way the flag must tell the truth about the modules.
        assert all(modules.values()) == detector.normalize.COMPILED


@pytest.mark.skipif(not detector.normalize.COMPILED, reason="the installed build is interpreted")
def test_compiled_and_interpreted_builds_give_identical_answers(tmp_path: Path) -> None:
    """Fixtures, their mutations and broken encodings: the same events and errors from both."""
    blobs = cases()
    assert len(blobs) > 1000
    path = tmp_path / "cases.json"
    path.write_bytes(orjson.dumps([b.hex() for b in blobs]))
    child = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("compiled_support.py")), str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONSAFEPATH": "1"},
        capture_output=True,
        check=True,
        timeout=300,
    )
    reply = orjson.loads(child.stdout)
    assert reply["compiled"] is False, "the child should have imported the sources"
    mine = answers(blobs)
    theirs = reply["lines"]
    assert len(mine) == len(theirs)
    pairs = enumerate(zip(mine, theirs, strict=True))
    differ = [(blobs[i][:120], a, b) for i, (a, b) in pairs if a != b]
    assert not differ, f"{len(differ)} answers differ; first: {differ[0]}"
