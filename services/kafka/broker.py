"""Start and probe the single-node KRaft broker."""

from __future__ import annotations

import base64
import os
import re
import shutil
import string
import subprocess
import time
from pathlib import Path

from services.config import (
    KAFKA_CONTROLLER_PORT,
    KAFKA_HEAP,
    KAFKA_PORT,
    LOGS,
    STATE,
    SUPPORT,
    say,
)
from services.kafka.probe import kafka_metadata
from services.process import FailedError, Service, StartResult, min_heap, port_open, tail
from services.tools import Tools, resolve_classpath


class Kafka(Service):
    """Apache Kafka, broker and controller in one JVM, on loopback."""

    name = "kafka"
    marker = "kafka.Kafka"
    log_name = "kafka.log"
    port = KAFKA_PORT

    @property
    def home(self) -> Path:
        """Config and data of the broker."""
        return STATE / "kafka"

    def version(self) -> str:
        """The Kafka version on the resolved classpath."""
        cp = STATE / "kafka.classpath"
        if cp.is_file():
            m = re.search(r"kafka_2\.13-([^/" + re.escape(os.pathsep) + r"]+)\.jar", cp.read_text())
            if m:
                return m.group(1)
        return "unknown"

    def health(self) -> tuple[bool, str]:
        """The broker answers a metadata request listing itself."""
        if not port_open(KAFKA_PORT):
            return False, f"port {KAFKA_PORT} closed"
        return kafka_metadata(KAFKA_PORT)

    def purge(self) -> None:
        """Delete topics, offsets and the KRaft log."""
        shutil.rmtree(self.home, ignore_errors=True)

    def start(self, tools: Tools) -> StartResult:
        """Render server.properties, format storage once, start the broker, wait for it."""
        t0 = time.monotonic()
        props = {}
        if os.environ.get("DETECTOR_KAFKA_DIST_VERSION"):
            props["kafka.version"] = os.environ["DETECTOR_KAFKA_DIST_VERSION"]
        classpath = resolve_classpath(tools.mvn, "kafka", SUPPORT / "kafka" / "pom.xml", props)
        cp = os.pathsep.join(classpath.jars)
        data = self.home / "data"
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "server.properties"
        template = string.Template((SUPPORT / "kafka" / "server.properties.template").read_text())
        conf.write_text(
            template.substitute(
                KAFKA_PORT=KAFKA_PORT,
                KAFKA_CONTROLLER_PORT=KAFKA_CONTROLLER_PORT,
                KAFKA_DATA_DIR=str(data),
            )
        )
        for port in (KAFKA_PORT, KAFKA_CONTROLLER_PORT):
            if port_open(port):
                raise FailedError(
                    f"kafka: 127.0.0.1:{port} is already in use by another process "
                    "(set DETECTOR_KAFKA_PORT / DETECTOR_KAFKA_CONTROLLER_PORT)"
                )
        jvm = [
            str(tools.kafka_java),
            f"-Xms{min_heap(KAFKA_HEAP)}",
            f"-Xmx{KAFKA_HEAP}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={SUPPORT / 'kafka' / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={LOGS}",
            "-cp",
            cp,
        ]
        if not (data / "meta.properties").is_file():
            self._format(jvm, conf)
        return self.launch([*jvm, "kafka.Kafka", str(conf)], classpath, t0)

    def _format(self, jvm: list[str], conf: Path) -> None:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        say(f"kafka: formatting KRaft storage (cluster id {cluster_id})")
        tool = [*jvm, "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id]
        with open(self.log, "ab") as fh:
            rc = subprocess.call(
                [*tool, "--config", str(conf)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(STATE),
            )
        if rc != 0:
            raise FailedError(f"kafka: storage format failed (exit {rc})\n" + tail(self.log))
