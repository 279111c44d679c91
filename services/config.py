"""Paths, ports and limits of the local services, read once from the environment."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
SUPPORT = REPO / "services"
HOST = "127.0.0.1"

_print_lock = threading.Lock()


def say(msg: str) -> None:
    """Print a progress line (thread-safe: services start in parallel)."""
    with _print_lock:
        print(f"[services] {msg}", flush=True)


def die(msg: str, code: int = 1) -> NoReturn:
    """Print an error for the user and exit with ``code``."""
    with _print_lock:
        print(f"scripts/services: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def _state_dir() -> Path:
    p = Path(os.environ.get("DETECTOR_SERVICES_DIR") or ".services")
    return p if p.is_absolute() else REPO / p


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        die(f"{name}={raw!r} is not an integer", 2)


STATE = _state_dir()
LOGS = STATE / "logs"
# Default ports sit below the kernel's ephemeral range (32768-60999 on Linux): a listener
# there can collide with the local port of some unrelated outgoing connection.
KAFKA_PORT = _int_env("DETECTOR_KAFKA_PORT", 19092)
KAFKA_CONTROLLER_PORT = _int_env("DETECTOR_KAFKA_CONTROLLER_PORT", KAFKA_PORT + 1)
KAFKA_SASL_SSL_PORT = _int_env("DETECTOR_KAFKA_SASL_SSL_PORT", KAFKA_PORT + 2)
KAFKA_SSL_PORT = _int_env("DETECTOR_KAFKA_SSL_PORT", KAFKA_PORT + 3)
KAFKA_SASL_PLAINTEXT_PORT = _int_env("DETECTOR_KAFKA_SASL_PLAINTEXT_PORT", KAFKA_PORT + 4)
SEARCH_PORT = _int_env("DETECTOR_SEARCH_PORT", 19200)
SEARCH_TRANSPORT_PORT = _int_env("DETECTOR_SEARCH_TRANSPORT_PORT", SEARCH_PORT + 100)
KAFKA_HEAP = os.environ.get("DETECTOR_KAFKA_HEAP") or "512m"
SEARCH_HEAP = os.environ.get("DETECTOR_SEARCH_HEAP") or "768m"
TIMEOUT = float(os.environ.get("DETECTOR_SERVICES_TIMEOUT") or 240)
STOP_TIMEOUT = 30.0

KAFKA_MIN_JAVA = 17
SEARCH_MIN_JAVA = 21
