"""Test support for the notification sinks: alerts, a recording HTTP server, a manual clock.

The server is a real HTTP server on 127.0.0.1 (stdlib ``http.server`` in a thread), so
the sinks run their whole httpx stack: JSON encoding, headers, timeouts, status codes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from detector.models import Alert, RuleInfo, alert_id

RULE = RuleInfo(
    id="7f3c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b",
    title="Credential used from an unusual address",
    level="high",
    tags=("attack.credential-access", "attack.t1078"),
)


def rule(
    level: str = "high", tags: tuple[str, ...] = RULE.tags, rule_id: str = RULE.id
) -> RuleInfo:
    """A rule like :data:`RULE` with another level, tags or id."""
    return RULE.model_copy(update={"level": level, "tags": tags, "id": rule_id})


def make_alert(
    n: int,
    *,
    user: str = "alice",
    ip: str = "203.0.113.7",
    reason: str | None = None,
    rule_info: RuleInfo = RULE,
    agent: str = "aws-cli/2.15",
    group: dict[str, str] | None = None,
) -> Alert:
    """Alert number ``n`` of ``rule_info`` about ``user`` from ``ip``."""
    event_id = f"evt-{n}"
    return Alert(
        id=alert_id(rule_info.id, event_id),
        timestamp=datetime(2025, 1, 2, 3, 4, n % 60, tzinfo=UTC),
        rule=rule_info,
        reason=reason if reason is not None else f"{user} signed in from {ip}",
        events=(
            {
                "@timestamp": "2025-01-02T03:04:05Z",
                "event": {"id": event_id, "dataset": "aws.cloudtrail", "action": "ConsoleLogin"},
                "user": {"name": user},
                "source": {"ip": ip},
                "user_agent": {"original": agent},
                "cloud": {"account": {"id": "123456789012"}},
            },
        ),
        group=group or {},
        event_count=3 if group else 1,
    )


@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The JSON body."""
        return json.loads(self.body)


class RecordingServer:
    """Answers with a script of replies (the last one repeats) and records every request."""

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies = list(replies or [Reply(200)])
        self.requests: list[Request] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(Request(self.command, self.path, headers, body))
                reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                payload = reply.body.encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/plain")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    @contextmanager
    def running(self) -> Iterator[RecordingServer]:
        """Serve in a thread for the duration of the block."""
        thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()

    @property
    def bodies(self) -> list[Any]:
        """The JSON body of every request, in order."""
        return [r.json for r in self.requests]


class ManualClock:
    """A wall clock that moves only when told to (``time.time`` stand-in)."""

    def __init__(self, start: float = 1_735_787_045.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class SleepLog:
    """An ``asyncio.sleep`` stand-in that records the requested delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
