"""Shared fixtures: the real local services started by ``scripts/services up``."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


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
def shared_dir() -> Path:
    """The read-only ``shared/`` folder beside the repository (corpus and samples)."""
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the shared corpus must sit beside the repository")
    return SHARED
