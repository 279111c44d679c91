"""Start and probe the single-node KRaft broker."""

from __future__ import annotations

import base64
import dataclasses
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
    KAFKA_SASL_PLAINTEXT_PORT,
    KAFKA_SASL_SSL_PORT,
    KAFKA_SSL_PORT,
    LOGS,
    STATE,
    SUPPORT,
    say,
)
from services.kafka import tls
from services.kafka.probe import kafka_metadata
from services.process import FailedError, Service, StartResult, min_heap, port_open, tail
from services.tools import Tools, resolve_classpath

#: Every client listener: plaintext, SASL_SSL, SSL (mTLS), SASL_PLAINTEXT.
SECURED_PORTS = (KAFKA_PORT, KAFKA_SASL_SSL_PORT, KAFKA_SSL_PORT, KAFKA_SASL_PLAINTEXT_PORT)


SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


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

    @property
    def tls(self) -> tls.TlsFiles:
        """The certificates and SASL password of the secured listeners."""
        return tls.TlsFiles(self.home / "tls")

    def health(self) -> tuple[bool, str]:
        """The broker answers a metadata request listing itself; the secured ports listen."""
        for port in SECURED_PORTS:
            if not port_open(port):
                return False, f"port {port} closed"
        return kafka_metadata(KAFKA_PORT)

    def outdated(self) -> str:
        """Why a running broker must be restarted for this version of the script, or ""."""
        if not self.tls.password_file.is_file() or not port_open(KAFKA_SASL_PLAINTEXT_PORT):
            return "it was started without the SASL and SSL listeners"
        return ""

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
        secured = tls.generate(self.home / "tls")
        template = string.Template((SUPPORT / "kafka" / "server.properties.template").read_text())
        conf.write_text(
            template.substitute(
                KAFKA_PORT=KAFKA_PORT,
                KAFKA_CONTROLLER_PORT=KAFKA_CONTROLLER_PORT,
                KAFKA_SASL_SSL_PORT=KAFKA_SASL_SSL_PORT,
                KAFKA_SSL_PORT=KAFKA_SSL_PORT,
                KAFKA_SASL_PLAINTEXT_PORT=KAFKA_SASL_PLAINTEXT_PORT,
                KAFKA_DATA_DIR=str(data),
                KAFKA_TLS_KEYSTORE=str(secured.broker_keystore),
                KAFKA_TLS_CA=str(secured.ca),
                KAFKA_SASL_USER=tls.SASL_USER,
                KAFKA_SASL_PASSWORD=secured.password(),
            )
        )
        conf.chmod(0o600)
        for port in (KAFKA_CONTROLLER_PORT, *SECURED_PORTS):
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
        # The SCRAM user lives in the KRaft metadata: added when storage is formatted, or
        # once with ConfigCommand into storage formatted by an older version of this script.
        scram_marker = self.home / "scram-user-added"
        if not (data / "meta.properties").is_file():
            self._format(jvm, conf, secured.password())
            scram_marker.touch()
        result = self.launch([*jvm, "kafka.Kafka", str(conf)], classpath, t0)
        if scram_marker.is_file():
            return result
        self._add_scram_user(jvm, secured.password())
        scram_marker.touch()
        return dataclasses.replace(
            result, detail=f"{result.detail}, SCRAM user added", total_s=time.monotonic() - t0
        )

    def _add_scram_user(self, jvm: list[str], password: str) -> None:
        """Give the SASL user SCRAM-SHA-256/512 credentials (kept in the KRaft metadata)."""
        config_command = [*jvm, "kafka.admin.ConfigCommand", "--bootstrap-server", self.where]
        user = ["--entity-type", "users", "--entity-name", tls.SASL_USER]
        for mechanism in SCRAM_MECHANISMS:  # one per request, says the broker
            credential = f"{mechanism}=[password={password}]"
            self._tool(
                [*config_command, "--alter", "--add-config", credential, *user],
                f"adding the {mechanism} user",
            )

    def _format(self, jvm: list[str], conf: Path, password: str) -> None:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        say(f"kafka: formatting KRaft storage (cluster id {cluster_id})")
        # one argument: a random id may begin with "-", which argparse reads as an option
        tool = [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}"]
        scram = [
            f"--add-scram={mechanism}=[name={tls.SASL_USER},password={password}]"
            for mechanism in SCRAM_MECHANISMS
        ]
        self._tool([*tool, *scram, "--config", str(conf)], "storage format")

    def _tool(self, cmd: list[str], what: str) -> None:
        """Run a Kafka tool to completion, its output in the broker log."""
        with open(self.log, "ab") as fh:
            rc = subprocess.call(
                cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(STATE)
            )
        if rc != 0:
            raise FailedError(f"kafka: {what} failed (exit {rc})\n" + tail(self.log))
