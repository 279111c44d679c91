"""Test support for the notification sinks: alerts, a recording HTTP server, a manual clock.

The server is an :mod:`http_support` loopback server (real HTTP on 127.0.0.1), so the
sinks run their whole httpx stack: JSON encoding, headers, timeouts, status codes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

import http_support
from http_support import ScriptedServer

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
class Reply(http_support.Reply):
    """One scripted answer of a notification endpoint: a text body, ``"ok"`` unless given."""

    body: str = "ok"


class RecordingServer(ScriptedServer):
    """A :class:`http_support.ScriptedServer` for notification endpoints, which take POSTs only.

    The script defaults to one ``200 ok``; a request other than a POST fails the test when
    the server stops.
    """

    def __init__(self, replies: list[Reply] | None = None) -> None:
        super().__init__(replies or [Reply(200)])

    @contextmanager
    def running(self) -> Iterator[Self]:
        """Serve for the duration of the block, then check that every request was a POST."""
        with super().running():
            yield self
        others = [f"{r.method} {r.path}" for r in self.requests if r.method != "POST"]
        assert not others, f"a notification endpoint takes POSTs only, got {others}"


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
