"""Finding Java and Maven, and resolving a service's runtime classpath with Maven."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from services.config import (
    KAFKA_MIN_JAVA,
    LOGS,
    REPO,
    SEARCH_MIN_JAVA,
    STATE,
    say,
)
from services.process import Classpath, FailedError, tail

_mvn_lock = threading.Lock()  # one Maven at a time: the local repository is shared


class MissingError(Exception):
    """A prerequisite (java, mvn, JDK >= 21) is not installed: exit code 2."""


class Tools(NamedTuple):
    """The programs every service start needs."""

    mvn: str
    kafka_java: Path
    search_java: Path


def java_major(java: Path) -> int | None:
    """Major version of a ``java`` binary, from its ``release`` file or ``-version``."""
    home = java.resolve().parent.parent
    release = home / "release"
    if release.is_file():
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
        if m:
            return int(m.group(1))
    try:
        out = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def _java_candidates(*env_homes: str) -> list[Path]:
    seen: set[Path] = set()
    out: list[Path] = []

    def add(java: Path) -> None:
        try:
            real = java.resolve()
        except OSError:
            return
        if real.is_file() and os.access(real, os.X_OK) and real not in seen:
            seen.add(real)
            out.append(java)

    for name in env_homes:
        home = os.environ.get(name)
        if home:
            add(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        add(Path(on_path))
    # standard location of distribution / Temurin packages; newest first
    homes = sorted(glob.glob("/usr/lib/jvm/*/bin/java"), reverse=True)
    jdks = [(java_major(Path(j)) or 0, j) for j in homes]
    for _, j in sorted(jdks, key=lambda t: -t[0]):
        add(Path(j))
    return out


def find_java(min_major: int, need_javac: bool, env_homes: tuple[str, ...]) -> Path:
    """The first Java >= ``min_major`` (with javac if asked): env homes, PATH, /usr/lib/jvm."""
    for java in _java_candidates(*env_homes):
        major = java_major(java)
        if major is None or major < min_major:
            continue
        if need_javac and not (java.resolve().parent / "javac").exists():
            continue
        return java
    raise MissingError(f"no Java >= {min_major}")


def kafka_java() -> Path:
    """The Java that runs the broker and the Kafka command-line tools."""
    return find_java(KAFKA_MIN_JAVA, False, ("DETECTOR_KAFKA_JAVA_HOME", "JAVA_HOME"))


def require_tools() -> Tools:
    """Every prerequisite, or exit 2 listing all that are missing with how to install them."""
    problems = []
    mvn = shutil.which("mvn")
    if not mvn:
        problems.append(
            "Maven (mvn) not found: it resolves the Kafka/OpenSearch jars. "
            "Install it, e.g. `apt-get install maven`."
        )
    k_java = s_java = None
    try:
        k_java = kafka_java()
    except MissingError:
        problems.append(
            f"no Java >= {KAFKA_MIN_JAVA} found for Kafka. "
            "Install one, e.g. `apt-get install openjdk-17-jre-headless`."
        )
    try:
        s_java = find_java(SEARCH_MIN_JAVA, True, ("JAVA21_HOME", "JAVA_HOME"))
    except MissingError:
        problems.append(
            f"no JDK >= {SEARCH_MIN_JAVA} (with javac) found for OpenSearch. Install a "
            "Temurin or OpenJDK 21+ JDK (e.g. `apt-get install temurin-21-jdk` from the "
            "Adoptium repository, or `openjdk-21-jdk-headless` where the distribution has it) "
            "and point JAVA21_HOME at it if it is not under /usr/lib/jvm."
        )
    if problems or not (mvn and k_java and s_java):
        for p in problems:
            print(f"scripts/services: {p}", file=sys.stderr)
        sys.exit(2)
    return Tools(mvn, k_java, s_java)


def resolve_classpath(mvn: str, name: str, pom: Path, props: dict[str, str]) -> Classpath:
    """Runtime classpath of ``pom``, cached in the state dir until the pom or props change."""
    t0 = time.monotonic()
    cache = STATE / f"{name}.classpath"
    stamp = STATE / f"{name}.classpath.key"
    key = hashlib.sha256(pom.read_bytes() + json.dumps(props, sort_keys=True).encode()).hexdigest()
    if cache.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        jars = [j for j in cache.read_text().strip().split(os.pathsep) if j]
        if jars and all(os.path.isfile(j) for j in jars):
            return Classpath(jars, time.monotonic() - t0, False)
    log = LOGS / f"mvn-{name}.log"
    tmp = cache.with_suffix(".tmp")
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        "dependency:build-classpath",
        f"-Dmdep.outputFile={tmp}",
    ]
    cmd += [f"-D{k}={v}" for k, v in props.items()]
    with _mvn_lock:
        say(f"{name}: resolving jars with Maven (first run downloads them to ~/.m2) ...")
        with open(log, "wb") as fh:
            rc = subprocess.call(
                cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(STATE)
            )
    if rc != 0 or not tmp.is_file():
        raise FailedError(
            f"{name}: Maven could not resolve {pom.relative_to(REPO)} (exit {rc})\n" + tail(log)
        )
    jars = [j for j in tmp.read_text().strip().split(os.pathsep) if j]
    tmp.replace(cache)
    stamp.write_text(key + "\n")
    return Classpath(jars, time.monotonic() - t0, True)
