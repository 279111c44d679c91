"""Shared fixtures (the real local services started by ``scripts/services up``, the vendored
data) and the outside-path audit that keeps the test suite inside the repository."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from path_audit import PathAudit, default_roots

from detector.app.rulepack import RuleLoader, rule_loader
from detector.app.settings import load_settings
from detector.detect import RuleSet

ROOT = Path(__file__).resolve().parent.parent
SIGMAHQ = ROOT / "detections" / "sigmahq"
SAMPLES = ROOT / "examples" / "samples"
#: The example settings: the organization values the rule pack's placeholders take.
EXAMPLE_CONFIG = ROOT / "examples" / "detector.yaml"

AUDIT = PathAudit(default_roots(ROOT))
AUDIT.install()


def _outside_message(found: list[tuple[str, str]]) -> str:
    paths = "\n".join(f"  {event} {path}" for event, path in found)
    return (
        "opened outside the repository (a clean clone has nothing there; vendor the data "
        f"into the repository or write it to tmp_path):\n{paths}"
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Collection (imports, module constants) stays inside the repository too."""
    found = AUDIT.take()
    if found:
        raise pytest.UsageError(_outside_message(found))


@pytest.fixture(autouse=True)
def _inside_repository() -> Iterator[None]:
    """Fails the test during which a path outside the repository was opened."""
    AUDIT.take()
    yield
    found = AUDIT.take()
    if found:
        pytest.fail(_outside_message(found))


@dataclass(frozen=True)
class Services:
    """Addresses of the local Kafka broker and search engine."""

    kafka: str
    search_url: str
    search_engine: str
    search_version: str


def _read_env_file() -> dict[str, str]:
    state = Path(os.environ.get("DETECTOR_SERVICES_DIR", ROOT / ".services"))
    env_file = state if state.is_file() else state / "env"
    values: dict[str, str] = {}
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip().removeprefix("export ")] = " ".join(shlex.split(value))
    values.update({k: v for k, v in os.environ.items() if k.startswith("DETECTOR_TEST_")})
    return values


@pytest.fixture(scope="session")
def services() -> Services:
    """The running services; fails (not skips) under CI when they are missing."""
    env = _read_env_file()
    if "DETECTOR_TEST_KAFKA" not in env or "DETECTOR_TEST_SEARCH_URL" not in env:
        message = "local services are not running: start them with `scripts/services up`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Services(
        kafka=env["DETECTOR_TEST_KAFKA"],
        search_url=env["DETECTOR_TEST_SEARCH_URL"],
        search_engine=env.get("DETECTOR_TEST_SEARCH_ENGINE", "opensearch"),
        search_version=env.get("DETECTOR_TEST_SEARCH_VERSION", ""),
    )


@pytest.fixture(scope="session")
def services_env(services: Services) -> dict[str, str]:
    """Every ``DETECTOR_TEST_*`` value of the running services (secured listeners too)."""
    return _read_env_file()


@pytest.fixture(scope="session")
def sigmahq_dir() -> Path:
    """The vendored SigmaHQ CloudTrail and GitHub audit rules (``detections/sigmahq``)."""
    return SIGMAHQ


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The vendored public sample records (``examples/samples``)."""
    return SAMPLES


@cache
def example_loader() -> RuleLoader:
    """Loads rules with the placeholder values of ``examples/detector.yaml``."""
    return rule_loader(load_settings(EXAMPLE_CONFIG).rules)


def pack_rules(paths: Sequence[Path | str]) -> RuleSet:
    """The rules under ``paths`` with the example organization values filled in."""
    return example_loader()(paths)
