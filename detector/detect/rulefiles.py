"""Where rules (and exception files) are found: the ``.yml``/``.yaml`` files under some paths."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

RULE_SUFFIXES = (".yml", ".yaml")


def rule_files(
    paths: Iterable[Path | str], on_absent: Callable[[Path], object] | None = None
) -> Iterator[Path]:
    """The rule files :func:`~detector.detect.loader.load_rules` reads for ``paths``, in
    its order: a file as given, a directory's ``.yml``/``.yaml`` files recursively, sorted;
    each file once, however the arguments overlap. A path that does not exist is passed to
    ``on_absent``."""
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            if on_absent is not None:
                on_absent(path)
            continue
        for file in files:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                yield file
