"""``/healthz``, ``/readyz`` and ``/metrics`` over HTTP, served from a daemon thread.

The endpoint runs outside the event loop on purpose: a stuck loop must still be able to
answer ``/healthz`` with 503 (its progress stamp is stale) so the orchestrator restarts it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from detector.app.metrics import REGISTRY


@dataclass
class HealthState:
    """What the endpoints report; the runner updates it."""

    ready: bool = False
    #: False while a worker process of this ``detector run`` is not ready (``--workers``).
    workers_ready: bool = True
    stall_after_seconds: float = 120.0
    last_progress: float = field(default_factory=time.monotonic)

    def progress(self) -> None:
        """Record that the pipeline loop completed a poll."""
        self.last_progress = time.monotonic()

    @property
    def healthy(self) -> bool:
        """False when the loop has not polled within ``stall_after_seconds``."""
        return time.monotonic() - self.last_progress < self.stall_after_seconds


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would flood the log; metrics cover them."""


class HealthServer:
    """Serves the health state and Prometheus metrics until :meth:`close`."""

    def __init__(self, state: HealthState, host: str = "127.0.0.1", port: int = 8080) -> None:
        self.state = state
        metrics = make_wsgi_app(REGISTRY)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/metrics":
                result: Iterable[bytes] = metrics(environ, start_response)
                return result
            if path in ("/healthz", "/readyz"):
                ready = state.ready and state.workers_ready
                ok = state.healthy if path == "/healthz" else ready and state.healthy
                start_response(
                    "200 OK" if ok else "503 Service Unavailable",
                    [("Content-Type", "text/plain")],
                )
                return [b"ok\n" if ok else b"unavailable\n"]
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]

        self._server: WSGIServer = make_server(host, port, app, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_port)

    def start(self) -> None:
        """Start serving in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
