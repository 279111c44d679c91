"""A service as a supervised JVM process: spawn, pid file, health wait, stop."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from services.config import HOST, LOGS, STATE, STOP_TIMEOUT, TIMEOUT, say

if TYPE_CHECKING:
    from services.tools import Tools


class FailedError(Exception):
    """A service failed to start or become healthy: exit code 1."""


class Classpath(NamedTuple):
    """A resolved runtime classpath and how long resolving it took."""

    jars: list[str]
    seconds: float
    used_maven: bool


@dataclass(frozen=True, slots=True)
class StartResult:
    """What one start took (printed by ``up``)."""

    pid: int
    detail: str
    classpath_s: float
    used_maven: bool
    boot_s: float
    total_s: float


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log, framed, for error messages."""
    try:
        data = path.read_bytes()[-64 * 1024 :].decode(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(data[-lines:]) + "\n--- end ---"


def pid_alive(pid: int, marker: str) -> bool:
    """True if `pid` is a live (non-zombie) process whose command line contains `marker`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid
    if stat[stat.rfind(")") + 2 :][:1] in ("Z", "X"):
        return False  # exited, waiting to be reaped
    if not cmdline:
        # right after exec() the kernel may not have filled in the new argv yet
        return True
    return marker.encode() in cmdline


def port_open(port: int, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections on the loopback ``port``."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def min_heap(heap: str) -> str:
    """Initial heap: half the maximum, at least 64 MiB."""
    m = re.fullmatch(r"(\d+)([mMgG])", heap)
    if not m:
        return heap
    mb = int(m.group(1)) * (1024 if m.group(2) in "gG" else 1)
    return f"{max(64, mb // 2)}m"


class Service:
    """One local service; subclasses say how to start, probe and purge it."""

    name = ""
    marker = ""  # substring of the JVM command line, guards against reused pids
    log_name = ""
    port = 0  # the port clients use (status shows it)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pidfile(self) -> Path:
        """Where the running process's pid is kept."""
        return STATE / f"{self.name}.pid"

    @property
    def log(self) -> Path:
        """The service's own log file."""
        return LOGS / self.log_name

    @property
    def where(self) -> str:
        """The address clients use, for ``status``."""
        return f"{HOST}:{self.port}"

    def pid(self) -> int | None:
        """Pid of the running service, or None (no pid file, dead, or a reused pid)."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid, self.marker) else None

    def spawn(self, cmd: list[str]) -> int:
        """Start ``cmd`` in its own process group, logging to the service log."""
        with open(self.log, "ab") as fh:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            fh.write(f"\n===== {stamp} scripts/services starting {self.name}\n".encode())
            fh.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=str(STATE),
                start_new_session=True,  # own process group: `down` signals the whole group
                close_fds=True,
            )
        self.proc = proc  # our child: poll() tells its exit status (and reaps it)
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def launch(self, cmd: list[str], classpath: Classpath, t0: float) -> StartResult:
        """Spawn the service's JVM and wait until it is healthy; ``t0`` is when start began."""
        t_boot = time.monotonic()
        pid = self.spawn(cmd)
        say(f"{self.name}: started pid {pid} ({cmd[0]}), waiting for {self.where} ...")
        detail = self.wait_healthy(pid, t_boot + TIMEOUT)
        now = time.monotonic()
        return StartResult(
            pid=pid,
            detail=detail,
            classpath_s=classpath.seconds,
            used_maven=classpath.used_maven,
            boot_s=now - t_boot,
            total_s=now - t0,
        )

    def stop(self) -> str:
        """SIGTERM the process group, wait, SIGKILL after STOP_TIMEOUT; says what happened."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return "not running"
        t0 = time.monotonic()
        self._signal(pid, signal.SIGTERM)
        while time.monotonic() - t0 < STOP_TIMEOUT:
            if self.proc is not None and self.proc.pid == pid:
                self.proc.poll()  # reap our own child so it does not linger as a zombie
            if not pid_alive(pid, self.marker):
                break
            time.sleep(0.2)
        else:
            self._signal(pid, signal.SIGKILL)
            time.sleep(0.5)
            self.pidfile.unlink(missing_ok=True)
            return f"killed (SIGKILL after {STOP_TIMEOUT:.0f} s)"
        self.pidfile.unlink(missing_ok=True)
        return f"stopped in {time.monotonic() - t0:.1f} s"

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def health(self) -> tuple[bool, str]:
        """(healthy, detail) from a real request to the service."""
        raise NotImplementedError

    def version(self) -> str:
        """The running version, or "" when unknown."""
        return ""

    def outdated(self) -> str:
        """Why the running process must be restarted (its setup changed since), or ""."""
        return ""

    def start(self, tools: Tools) -> StartResult:
        """Start the service and wait until it is healthy."""
        raise NotImplementedError

    def purge(self) -> None:
        """Delete the service's data."""
        raise NotImplementedError

    def wait_healthy(self, pid: int, deadline: float) -> str:
        """Poll :meth:`health` until it passes; FailedError if the process dies or time runs out."""
        last = "not checked yet"
        while time.monotonic() < deadline:
            rc = self.proc.poll() if self.proc is not None and self.proc.pid == pid else None
            if rc is not None or not pid_alive(pid, self.marker):
                how = f" with status {rc}" if rc is not None else ""
                raise FailedError(
                    f"{self.name}: process {pid} exited during startup{how}\n" + tail(self.log)
                )
            ok, last = self.health()
            if ok:
                return last
            time.sleep(0.5)
        raise FailedError(
            f"{self.name}: not healthy after {TIMEOUT:.0f} s (last check: {last})\n"
            + tail(self.log)
        )
