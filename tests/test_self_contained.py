"""The repository is self-contained: nothing it runs reads a path outside it.

Two guards: the conftest's run-time audit (``tests/path_audit.py``) fails any test that
opens a path outside the repository, and the source scan below fails on paths written to
climb out of it (``../`` past the top, ``Path(__file__)`` parents past the top) in the
code, tests, benchmarks, scripts, examples and docs, which also covers what the test
session does not run (benchmarks, scripts, the README's commands).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import AUDIT, ROOT, SAMPLES, SIGMAHQ
from path_audit import PathAudit

#: Folders scanned for escaping paths; vendored data and generated logs are not code.
SCANNED = ("detector", "tests", "bench", "scripts", "examples", "docs", "deploy", "services", ".ci")
SKIPPED = ("examples/samples", "examples/scenario", "tests/fixtures")
TEXT_SUFFIXES = {".py", ".md", ".sh", ".yml", ".yaml", ".toml", ".cfg", ".ini", ".txt", ""}
TOP_FILES = (
    "README.md",
    "DETECTIONS.md",
    "Dockerfile",
    "docker-compose.yml",
    "pyproject.toml",
    "setup.py",
)

#: A run of ``../`` (or a final ``/..``); ``...`` (an ellipsis) is not one.
CLIMB = re.compile(r"(?<![.\w])((?:\.\./)+|\.\.(?=[\"'`)\s]|$))|/((?:\.\./)*\.\.)(?=[\"'`)/\s]|$)")


def scanned_files() -> Iterator[Path]:
    """Text files of the scanned folders and the top-level files."""
    for name in TOP_FILES:
        yield ROOT / name
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if (
                path.is_file()
                and path != Path(__file__)  # its own examples of what it catches
                and path.suffix in TEXT_SUFFIXES
                and not rel.startswith(SKIPPED)
                and not any(
                    part.startswith(".") or part == "__pycache__"
                    for part in path.relative_to(ROOT).parts[1:]
                )
            ):
                yield path


def climbs(text: str) -> Iterator[tuple[int, bool, int]]:
    """Each relative climb in ``text``: (levels, anchored to a path before it, line number).

    ``../x`` at the start of a path is relative to the working directory (the repository
    root for commands, the file's folder for Markdown links and YAML settings files);
    ``$(dirname "$0")/..`` and ``{here}/..`` are anchored to the file's own folder.
    """
    for match in CLIMB.finditer(text):
        run = match.group(1) or match.group(2)
        levels = run.count("..")
        yield levels, match.group(2) is not None, text.count("\n", 0, match.start()) + 1


def file_climbs(text: str, rel: Path) -> list[str]:
    """Where ``text``, the file ``rel`` of the repository, climbs above the root with ``..``."""
    depth = len(rel.parts) - 1  # levels from the file's folder up to the root
    problems = []
    lines = text.splitlines()
    for levels, anchored, line in climbs("\n".join(lines)):
        if "self-contained: deliberate" in lines[line - 1]:
            continue
        # Relative to the file: anchored paths, Markdown links and paths in YAML settings
        # files (detector, compose); commands run from the root.
        relative_to_file = (rel.suffix == ".md" and "](" in lines[line - 1]) or rel.suffix in (
            ".yml",
            ".yaml",
        )
        base = depth if anchored or relative_to_file else 0
        if levels > base:
            problems.append(f"{rel}:{line}: climbs {levels} level(s) out of {rel.parent}/")
    return problems


def _file_levels(node: ast.expr, names: dict[str, int]) -> int | None:
    """Levels above the file that ``node`` names (0: the file), if it derives from ``__file__``."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else names.get(node.id)
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute):  # Path(__file__).resolve(), .absolute()
            return _file_levels(node.func.value, names)
        if node.args:  # Path(__file__), os.path.dirname(__file__)
            inner = _file_levels(node.args[0], names)
            is_dirname = isinstance(node.func, ast.Attribute) and node.func.attr == "dirname"
            return None if inner is None else inner + is_dirname
        return None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _file_levels(node.value, names)
        return None if inner is None else inner + 1
    if (
        isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "parents"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, int)
    ):
        inner = _file_levels(node.value.value, names)
        return None if inner is None else inner + node.slice.value + 1
    return None


def python_climbs(source: str, rel: Path) -> list[str]:
    """Where module ``rel`` goes above the repository root from ``__file__`` (ROOT.parent...)."""
    top = len(rel.parts)  # levels from the file itself up to the root
    names: dict[str, int] = {}
    problems: dict[int, str] = {}  # one per line: nested sub-expressions climb too
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            levels = _file_levels(node.value, names)
            if isinstance(target, ast.Name) and levels is not None:
                names[target.id] = levels
        if isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
            levels = _file_levels(node, names)
            if levels is not None and levels > top:
                problems[node.lineno] = f"{rel}:{node.lineno}: goes above the repository"
    return [problems[line] for line in sorted(problems)]


def test_no_source_climbs_out_of_the_repository() -> None:
    """No code, test, benchmark, script, example or doc names a path above the repository root."""
    problems: list[str] = []
    for path in scanned_files():
        rel = path.relative_to(ROOT)
        text = path.read_text(encoding="utf-8", errors="replace")
        problems += file_climbs(text, rel)
        if path.suffix == ".py":
            problems += python_climbs(text, rel)
    assert sorted(set(problems)) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Path('../shared/corpus')", [(1, False)]),
        ('cd "$(dirname "$0")/.."', [(1, True)]),
        ("see [x](../../README.md)", [(2, False)]),
        ("a https://kibana.example.com/.../s/space url", []),
        ("HEAD~1..main", []),
    ],
)
def test_climbs_are_found(text: str, expected: list[tuple[int, bool]]) -> None:
    """The scan sees relative climbs (and whether they are anchored), not ellipses or git ranges."""
    assert [(levels, anchored) for levels, anchored, _ in climbs(text)] == expected


def test_python_climbs_are_found() -> None:
    """``parents[k]`` and ``.parent`` past the top are found, also through a ROOT name."""
    source = (
        "from pathlib import Path\n"
        "ROOT = Path(__file__).resolve().parents[1]\n"  # the repository: fine
        "A = ROOT / 'detections'\n"
        "B = ROOT.parent / 'shared'\n"  # above it
        "C = Path(__file__).parent.parent.parent\n"  # above it
    )
    problems = python_climbs(source, Path("tests/probe.py"))
    assert [p.split(":")[1] for p in problems] == ["4", "5"]


def test_the_audit_catches_an_outside_read() -> None:
    """Listing the filesystem root (outside every allowed folder) is recorded by the hook."""
    AUDIT.take()
    os.listdir(os.sep)
    assert AUDIT.take() == [("os.listdir", os.sep)]


def test_the_audit_allows_the_repository_and_tmp(tmp_path: Path) -> None:
    """Reads in the repository and writes under tmp are not recorded; prefixes match whole names."""
    audit = PathAudit([ROOT, tmp_path])
    audit("open", (str(ROOT / "README.md"), "r", 0))
    audit("open", (str(tmp_path / "x"), "w", 0))
    audit("open", (3, "r", 0))
    audit("open", (str(ROOT) + "-other/file", "r", 0))
    audit("os.scandir", (os.fsencode(str(ROOT) + "/../elsewhere"),))
    assert [path for _, path in audit.take()] == [
        str(ROOT) + "-other/file",
        os.path.join(os.path.dirname(str(ROOT)), "elsewhere"),  # self-contained: deliberate
    ]


def test_vendored_data_carries_its_licenses() -> None:
    """The SigmaHQ rules and each sample folder have their license text and named upstream."""
    assert (SIGMAHQ / "LICENSE").read_text().startswith("# Detection Rule License (DRL) 1.1")
    upstream = (SIGMAHQ / "UPSTREAM.md").read_text()
    assert "| commit | `8eaafff1f2845a696050e05e72ba1140ee190698` |" in upstream
    readme = (SAMPLES / "README.md").read_text()
    for folder in sorted(p for p in SAMPLES.iterdir() if p.is_dir()):
        assert (folder / "LICENSE").is_file(), folder
        assert f"`{folder.name}/`" in readme, folder


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _upstream(tmp_path: Path) -> tuple[Path, str, str]:
    """A local git repository with SigmaHQ's layout and two commits: (path, first, second)."""
    repo = tmp_path / "sigma"
    cloudtrail = repo / "rules" / "cloud" / "aws" / "cloudtrail"
    github = repo / "rules" / "application" / "github" / "audit"
    for folder in (cloudtrail, github, repo / "rules" / "windows"):
        folder.mkdir(parents=True)
    (cloudtrail / "old.yml").write_text("title: old\n")
    (github / "gh.yml").write_text("title: gh\n")
    (repo / "rules" / "windows" / "win.yml").write_text("title: win\n")
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for key, value in (("user.email", "t@example.com"), ("user.name", "t")):
        _git(repo, "config", key, value)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    first = _git(repo, "rev-parse", "HEAD")
    (cloudtrail / "old.yml").unlink()
    (cloudtrail / "new.yml").write_text("title: new\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "two")
    return repo, first, _git(repo, "rev-parse", "HEAD")


def test_update_sigmahq_replaces_the_rules_from_a_commit(tmp_path: Path) -> None:
    """The script vendors exactly the two folders of the given commit and records the commit."""
    repo, first, second = _upstream(tmp_path)
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    (project / "scripts" / "update-sigmahq").write_bytes(
        (ROOT / "scripts" / "update-sigmahq").read_bytes()
    )
    (project / "scripts" / "update-sigmahq").chmod(0o755)
    vendored = project / "detections" / "sigmahq"
    (vendored / "aws" / "cloudtrail").mkdir(parents=True)
    (vendored / "aws" / "cloudtrail" / "stale.yml").write_text("title: stale\n")
    (vendored / "UPSTREAM.md").write_text((SIGMAHQ / "UPSTREAM.md").read_text())
    (vendored / "LICENSE").write_text("kept\n")
    script = str(project / "scripts" / "update-sigmahq")

    done = subprocess.run(
        [script, second[:12], repo.as_uri()], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    files = sorted(p.relative_to(vendored).as_posix() for p in vendored.rglob("*") if p.is_file())
    assert files == ["LICENSE", "UPSTREAM.md", "aws/cloudtrail/new.yml", "github/audit/gh.yml"]
    assert f"| commit | `{second}` |" in (vendored / "UPSTREAM.md").read_text()
    assert (vendored / "LICENSE").read_text() == "kept\n"

    missing = subprocess.run(
        [script, "0" * 40, repo.as_uri()], check=False, capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "is not in" in missing.stderr
    assert f"| commit | `{second}` |" in (vendored / "UPSTREAM.md").read_text()
    assert first != second
