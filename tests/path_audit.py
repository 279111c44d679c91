"""Record every file or directory a test session opens outside the places it may use.

A test, benchmark or fixture that reads data from beside the repository passes on one
machine and fails on a clean clone. ``PathAudit`` catches that at run time with a
``sys.addaudithook`` hook on the interpreter's own file events (``open``, ``os.listdir``,
``os.scandir``, ``glob.glob``), whatever library makes the call. The conftest installs it
for every session and fails the test during which an outside path was opened.

Allowed: the repository, the interpreter and its environment (venv, site-packages,
standard library), temporary directories and the system's own folders (``/usr``,
``/etc``, ``/proc``...), which libraries read for certificates, time zones and MIME types.
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: Audit events whose first argument is a path the process reads, lists or writes.
EVENTS = frozenset({"open", "os.listdir", "os.scandir", "glob.glob"})

#: System folders: read by the standard library and clients, never project data.
SYSTEM = (
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/opt",
)


class PathAudit:
    """Collects the paths opened outside ``allowed`` roots, once installed."""

    def __init__(self, allowed: Iterable[str | os.PathLike[str]]) -> None:
        roots = {os.path.abspath(os.fspath(root)) for root in allowed}
        # "/a/b" must not allow "/a/bc": compare with a trailing separator.
        self.roots = tuple(sorted(root.rstrip(os.sep) + os.sep for root in roots))
        self.outside: list[tuple[str, str]] = []

    def allows(self, path: str) -> bool:
        """Whether the absolute ``path`` lies in one of the allowed roots."""
        return (path + os.sep).startswith(self.roots)

    def __call__(self, event: str, args: tuple[object, ...]) -> None:
        if event not in EVENTS or not args:
            return
        target = args[0]
        if isinstance(target, bytes):
            target = os.fsdecode(target)
        if not isinstance(target, str | os.PathLike):
            return  # a file descriptor or None (current directory): nothing new is reached
        path = os.path.abspath(os.fspath(target))
        if not self.allows(path):
            self.outside.append((event, path))

    def install(self) -> None:
        """Start auditing (an audit hook cannot be removed: install once per process)."""
        sys.addaudithook(self)

    def take(self) -> list[tuple[str, str]]:
        """The outside paths recorded since the last call."""
        found, self.outside = self.outside, []
        return found


def default_roots(repo: Path) -> list[str]:
    """The repository, the Python installation and environment, temp and system folders."""
    roots = [str(repo), sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    roots += [p for p in sysconfig.get_paths().values() if p]
    roots += [*site.getsitepackages(), site.getusersitepackages()]
    roots += [tempfile.gettempdir(), *SYSTEM]
    services = os.environ.get("DETECTOR_SERVICES_DIR")
    if services:  # the services' state may be kept elsewhere by choice
        roots.append(services)
    return roots
