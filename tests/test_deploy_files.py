"""Structure of the user-facing deploy files: Dockerfile, docker-compose.yml, index template.

No Docker engine runs here, so these tests read the files and check the rules the project
tells its users to apply. The rule checkers are also run on small bad inputs to show they
can fail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from detector.app.settings import load_settings
from detector.sinks.documents import DEFAULT_INDEX, index_template

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"

# ----------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    """One ``FROM`` stage: its base image, name and instructions (keyword, argument)."""

    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile (comments dropped, ``\\`` continuations joined)."""
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    if buffer:
        logical.append(buffer)
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = [p for p in argument.split() if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(image=parts[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, argument.strip()))
    return stages


_PINNED_TAG = re.compile(r":[^:/@]*\d[^:/@]*$")
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_FORBIDDEN_TOOLS = {
    "apt-get", "apt", "apk", "yum", "dnf", "microdnf", "pip", "pip3",
    "gcc", "g++", "cc", "clang", "make",
}  # fmt: skip


def forbidden_commands(run: str) -> list[str]:
    """Commands of a ``RUN`` line that install packages or compile (by the command's name)."""
    found: list[str] = []
    for command in re.split(r"&&|\|\||;|\|", run):
        words = [w for w in command.split() if not re.fullmatch(r"\w+=\S*", w)]
        if words and words[0] == "sudo":
            words = words[1:]
        if not words:
            continue
        tool = words[0].rsplit("/", 1)[-1]
        runs_pip_module = bool(re.match(r"python[\d.]*$", tool)) and words[1:3] == ["-m", "pip"]
        if tool in _FORBIDDEN_TOOLS or runs_pip_module:
            found.append(" ".join(words[:3]))
        if "build-essential" in words:
            found.append("build-essential")
    return found


def image_pinned(image: str) -> bool:
    """A version tag (contains a digit, not ``latest``) or a sha256 digest."""
    if _DIGEST.search(image):
        return True
    name = image.split("@", 1)[0]
    return bool(_PINNED_TAG.search(name)) and not name.endswith(":latest")


def dockerfile_problems(text: str) -> list[str]:
    """Every broken rule of the project's image policy, as readable sentences."""
    stages = parse_dockerfile(text)
    problems: list[str] = []
    if len(stages) < 2:
        problems.append("not multi-stage")
        if not stages:
            return problems
    names = {s.name for s in stages if s.name}
    for stage in stages:
        if stage.image not in names and not image_pinned(stage.image):
            problems.append(f"base image {stage.image} is not pinned to a version or digest")
    final = stages[-1]
    if final.image in names:
        problems.append("final stage builds on a build stage")
    elif not re.search(r"(slim|distroless)", final.image):
        problems.append(f"final base {final.image} is neither slim nor distroless")
    users = [arg for kw, arg in final.instructions if kw == "USER"]
    if not users:
        problems.append("final stage has no USER")
    else:
        uid = users[-1].split(":", 1)[0]
        if not uid.isdigit() or uid == "0":
            problems.append(f"final USER {users[-1]} is not a numeric non-root uid")
    for kw, arg in final.instructions:
        if kw == "RUN" and forbidden_commands(arg):
            problems.append(f"final stage installs or compiles: {forbidden_commands(arg)}")
    for kw in ("ENTRYPOINT", "CMD"):
        args = [arg for k, arg in final.instructions if k == kw]
        if args and not _json_array(args[-1]):
            problems.append(f"{kw} is not exec form")
    if not any(kw in ("ENTRYPOINT", "CMD") for kw, _ in final.instructions):
        problems.append("final stage has no ENTRYPOINT or CMD")
    checks = [arg for kw, arg in final.instructions if kw == "HEALTHCHECK"]
    if not checks or checks[-1].upper().startswith("NONE"):
        problems.append("final stage has no HEALTHCHECK")
    return problems


def _json_array(argument: str) -> bool:
    try:
        value = json.loads(argument)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


GOOD_SMALL = """
FROM python:3.11.14-slim-bookworm AS build
RUN pip install .
FROM gcr.io/distroless/python3-debian12@sha256:{digest}
USER 65532
HEALTHCHECK CMD ["python", "-c", "pass"]
ENTRYPOINT ["detector"]
""".replace("{digest}", "a" * 64)


def test_project_dockerfile_follows_the_image_rules() -> None:
    """Multi-stage, pinned bases, slim runtime, numeric non-root USER, no pip/apt/gcc, exec form."""
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_project_dockerfile_healthcheck_and_command() -> None:
    """The runtime runs ``detector run`` and probes ``/healthz`` on the settings' default port."""
    final = parse_dockerfile(DOCKERFILE.read_text())[-1]
    (healthcheck,) = [arg for kw, arg in final.instructions if kw == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert str(load_settings().health.port) in healthcheck
    entry = [json.loads(a) for k, a in final.instructions if k == "ENTRYPOINT"][-1]
    cmd = [json.loads(a) for k, a in final.instructions if k == "CMD"][-1]
    assert entry + cmd == ["detector", "run"]
    copies = [arg for kw, arg in final.instructions if kw == "COPY"]
    assert any(c.startswith("--from=build /opt/detector") for c in copies)


def test_checker_accepts_a_minimal_good_dockerfile() -> None:
    """The checker is not vacuous in the other direction: a correct small file passes."""
    assert dockerfile_problems(GOOD_SMALL) == []


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            GOOD_SMALL.replace(
                "FROM python:3.11.14-slim-bookworm AS build\nRUN pip install .\n", ""
            ),
            "not multi-stage",
        ),
        (GOOD_SMALL.replace("python:3.11.14-slim-bookworm", "python:latest"), "not pinned"),
        (GOOD_SMALL.replace("python:3.11.14-slim-bookworm", "python"), "not pinned"),
        (GOOD_SMALL.replace("@sha256:" + "a" * 64, ":nonroot"), "not pinned"),
        (GOOD_SMALL.replace("USER 65532\n", ""), "no USER"),
        (GOOD_SMALL.replace("USER 65532", "USER app"), "numeric non-root"),
        (GOOD_SMALL.replace("USER 65532", "USER 0"), "numeric non-root"),
        (
            GOOD_SMALL.replace(
                "USER 65532", "USER 65532\nRUN apt-get update && \\\n  apt-get install -y curl"
            ),
            "installs or compiles",
        ),
        (
            GOOD_SMALL.replace("USER 65532", "USER 65532\nRUN python -m pip install requests"),
            "installs or compiles",
        ),
        (GOOD_SMALL.replace("USER 65532", "USER 65532\nRUN gcc -o x x.c"), "installs or compiles"),
        (
            GOOD_SMALL.replace("USER 65532", "USER 65532\nRUN true; /usr/bin/pip3 install x"),
            "installs or compiles",
        ),
        (GOOD_SMALL.replace('ENTRYPOINT ["detector"]', "ENTRYPOINT detector run"), "exec form"),
        (GOOD_SMALL.replace('HEALTHCHECK CMD ["python", "-c", "pass"]\n', ""), "no HEALTHCHECK"),
        (
            GOOD_SMALL.replace(
                "gcr.io/distroless/python3-debian12@sha256:" + "a" * 64, "python:3.11.14-bookworm"
            ),
            "neither slim nor distroless",
        ),
    ],
)
def test_checker_catches_bad_dockerfiles(bad: str, expected: str) -> None:
    """Each broken rule is reported (the checker can fail)."""
    problems = dockerfile_problems(bad)
    assert any(expected in p for p in problems), problems


# ------------------------------------------------------------------------ docker-compose


def compose_problems(doc: dict[str, Any]) -> list[str]:
    """Broken rules of the user compose file."""
    problems: list[str] = []
    services: dict[str, Any] = doc.get("services") or {}
    for name in ("kafka", "elasticsearch", "kibana", "detector"):
        if name not in services:
            problems.append(f"service {name} missing")
    for name, svc in services.items():
        image = svc.get("image")
        if image is None and "build" not in svc:
            problems.append(f"{name}: neither image nor build")
        if image is not None and "build" not in svc and not image_pinned(str(image)):
            problems.append(f"{name}: image {image} is not pinned")
    for name in ("kafka", "elasticsearch", "kibana", "detector"):
        svc = services.get(name, {})
        test = (svc.get("healthcheck") or {}).get("test")
        if not test or test == ["NONE"]:
            problems.append(f"{name}: no healthcheck")
        if not svc.get("ports"):
            problems.append(f"{name}: no ports")
    inits = [
        n
        for n, s in services.items()
        if str(s.get("image", "")).startswith("apache/kafka") and n != "kafka"
    ]
    if not inits:
        problems.append("no topic-init job")
    detector_deps = services.get("detector", {}).get("depends_on") or {}
    if not isinstance(detector_deps, dict):
        problems.append("detector: depends_on without conditions")
        detector_deps = {}
    for dep in ("kafka", "elasticsearch"):
        if (detector_deps.get(dep) or {}).get("condition") != "service_healthy":
            problems.append(f"detector: does not wait for {dep} to be healthy")
    if not any(
        (detector_deps.get(i) or {}).get("condition") == "service_completed_successfully"
        for i in inits
    ):
        problems.append("detector: does not wait for the topic-init job")
    kibana_deps = services.get("kibana", {}).get("depends_on") or {}
    if (
        not isinstance(kibana_deps, dict)
        or (kibana_deps.get("elasticsearch") or {}).get("condition") != "service_healthy"
    ):
        problems.append("kibana: does not wait for elasticsearch to be healthy")
    es_image = str(services.get("elasticsearch", {}).get("image", ""))
    kibana_image = str(services.get("kibana", {}).get("image", ""))
    if es_image.rpartition(":")[2] != kibana_image.rpartition(":")[2]:
        problems.append("kibana and elasticsearch versions differ")
    if not re.search(r":8\.\d+\.\d+$", es_image):
        problems.append(f"elasticsearch image {es_image} is not an 8.x.y release")
    env = services.get("detector", {}).get("environment") or {}
    for key in ("DETECTOR_KAFKA__BOOTSTRAP_SERVERS", "DETECTOR_SINKS__ELASTICSEARCH__HOSTS"):
        if key not in env:
            problems.append(f"detector: environment {key} missing")
    return problems


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def test_compose_file_follows_the_rules() -> None:
    """Services, pinned images, healthchecks, ports, depends_on conditions, detector environment."""
    assert compose_problems(_compose()) == []


def test_compose_kafka_is_kraft_4_and_elasticsearch_is_local_single_node() -> None:
    """Kafka 4.x in KRaft mode; Elasticsearch single node, security off, heap capped."""
    services = _compose()["services"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", services["kafka"]["image"])
    kafka_env = services["kafka"]["environment"]
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    es_env = services["elasticsearch"]["environment"]
    assert es_env["discovery.type"] == "single-node"
    assert es_env["xpack.security.enabled"] == "false"
    assert re.search(r"-Xmx\d+[mg]", es_env["ES_JAVA_OPTS"])
    for name in ("kafka", "elasticsearch", "kibana", "detector"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_topic_job_creates_every_topic() -> None:
    """The init job creates the four source topics and the internal ones, state compacted."""
    script = "\n".join(_compose()["services"]["topics"]["command"])
    for topic in ("cloudtrail", "registry", "ci", "vault"):
        assert re.search(rf"\b{topic}\b", script)
    for topic in ("detector-matches", "detector-deadletter", "detector-state"):
        assert f"--topic {topic}" in script
    assert re.search(r"--topic detector-state .*cleanup\.policy=compact", script)


def test_compose_detector_environment_is_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The detector's DETECTOR_* variables validate against the real settings schema, with the
    mounted settings file (DETECTOR_CONFIG) that gives the rule pack its placeholder values."""
    service = _compose()["services"]["detector"]
    env = service["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    mounts = dict(reversed(v.split(":")[:2]) for v in service["volumes"])
    folder, _, name = env["DETECTOR_CONFIG"].rpartition("/")
    settings = load_settings(ROOT / mounts[folder] / name)
    assert settings.rules.placeholders
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.sinks.elasticsearch is not None
    assert settings.sinks.elasticsearch.hosts == ["http://elasticsearch:9200"]
    assert settings.health.port == 8080


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["services"]["kafka"].__setitem__("image", "apache/kafka:latest"),
            "not pinned",
        ),
        (
            lambda d: d["services"]["kibana"].__setitem__(
                "image", "docker.elastic.co/kibana/kibana"
            ),
            "not pinned",
        ),
        (lambda d: d["services"]["kibana"].pop("healthcheck"), "kibana: no healthcheck"),
        (lambda d: d["services"]["detector"]["depends_on"].pop("topics"), "topic-init job"),
        (
            lambda d: d["services"]["detector"]["depends_on"]["kafka"].__setitem__(
                "condition", "service_started"
            ),
            "wait for kafka",
        ),
        (
            lambda d: d["services"]["kibana"].__setitem__(
                "image", "docker.elastic.co/kibana/kibana:8.18.0"
            ),
            "versions differ",
        ),
        (
            lambda d: d["services"]["detector"]["environment"].pop(
                "DETECTOR_SINKS__ELASTICSEARCH__HOSTS"
            ),
            "ELASTICSEARCH__HOSTS missing",
        ),
        (lambda d: d["services"].pop("elasticsearch"), "service elasticsearch missing"),
        (lambda d: d["services"]["detector"].pop("ports"), "detector: no ports"),
    ],
)
def test_compose_checker_catches_bad_files(mutate: Any, expected: str) -> None:
    """Each broken compose rule is reported (the checker can fail)."""
    doc = _compose()
    mutate(doc)
    problems = compose_problems(doc)
    assert any(expected in p for p in problems), problems


# ---------------------------------------------------------------------------- deploy/


def test_deploy_index_template_matches_the_code() -> None:
    """deploy/'s template JSON (for operators who install it by hand) is what the sinks install.

    Regenerate with: python -c "import json; from detector.sinks.documents import *;
    print(json.dumps(index_template(DEFAULT_INDEX), indent=2))"
    """
    path = ROOT / "deploy" / "search" / "detector-alerts.index-template.json"
    assert json.loads(path.read_text()) == index_template(DEFAULT_INDEX)
