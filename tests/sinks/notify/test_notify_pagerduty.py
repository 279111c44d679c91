"""PagerDutySink against a real HTTP server on 127.0.0.1: Events API v2 bodies and delivery."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from notify_support import ManualClock, RecordingServer, Reply, SleepLog, make_alert, rule

from detector.errors import AlertRejectedError, SinkError
from detector.models import Sink, Suppression
from detector.sinks.notify import NotifyRetryConfig, PagerDutySinkConfig
from detector.sinks.notify.pagerduty import PagerDutySink
from detector.sinks.notify.text import REDACTED

FAST = NotifyRetryConfig(max_retries=3, backoff_initial=0.01, backoff_max=0.05)
KEY = "0123456789abcdef0123456789abcdef"
ACCEPTED = Reply(202, '{"status":"success","message":"Event processed"}')


@contextmanager
def pagerduty(
    replies: list[Reply] | None = None, **overrides: Any
) -> Iterator[tuple[PagerDutySink, RecordingServer, ManualClock, SleepLog]]:
    """A PagerDutySink sending to a fresh recording server."""
    with RecordingServer(replies or [ACCEPTED]).running() as server:
        settings: dict[str, Any] = {
            "routing_key": KEY,
            "events_url": f"{server.url}/v2/enqueue",
            "allowed_hosts": ["127.0.0.1"],
            "allow_http": True,
            "retry": FAST,
            "request_timeout": 5,
        }
        settings.update(overrides)
        clock, sleeps = ManualClock(), SleepLog()
        sink = PagerDutySink(PagerDutySinkConfig(**settings), clock=clock, sleep=sleeps)
        yield sink, server, clock, sleeps


async def test_sink_implements_the_port() -> None:
    """PagerDutySink satisfies the Sink protocol the runner calls."""
    with pagerduty() as (sink, _, _, _):
        assert isinstance(sink, Sink)
        await sink.close()


async def test_trigger_event_shape() -> None:
    """A trigger with routing_key, dedup_key = alert id, payload fields and a Kibana link."""
    alert = make_alert(1)
    with pagerduty(kibana_url="https://kibana.example.com") as (sink, server, _, _):
        await sink.write([alert])
        await sink.close()
    request = server.requests[0]
    assert request.path == "/v2/enqueue"
    body = request.json
    assert body["routing_key"] == KEY
    assert body["event_action"] == "trigger"
    assert body["dedup_key"] == alert.id
    payload = body["payload"]
    assert payload["severity"] == "error"
    assert payload["source"] == "detector"
    assert payload["timestamp"] == "2025-01-02T03:04:01+00:00"
    assert payload["summary"].startswith("[HIGH] Credential used from an unusual address: alice")
    assert len(payload["summary"]) <= 1024
    details = payload["custom_details"]
    assert details["alert_id"] == alert.id
    assert details["rule_id"] == alert.rule.id
    assert details["source.ip"] == "203.0.113.7"
    assert details["tags"] == ["attack.credential-access", "attack.t1078"]
    assert body["links"][0]["text"] == "Alert in Kibana"
    assert body["links"][0]["href"].startswith("https://kibana.example.com/app/discover#/")
    assert alert.id in body["links"][0]["href"]


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        ("informational", "info"),
        ("low", "info"),
        ("medium", "warning"),
        ("high", "error"),
        ("critical", "critical"),
    ],
)
async def test_sigma_levels_map_to_pagerduty_severities(level: str, severity: str) -> None:
    """Each Sigma level becomes the PagerDuty severity of the same weight."""
    with pagerduty(min_severity="informational") as (sink, server, _, _):
        await sink.write([make_alert(2, rule_info=rule(level))])
        await sink.close()
    assert server.bodies[0]["payload"]["severity"] == severity


async def test_default_route_pages_only_high_and_critical() -> None:
    """With the defaults, medium and lower alerts do not page anyone."""
    alerts = [
        make_alert(3, rule_info=rule("medium", rule_id="r-medium")),
        make_alert(4, rule_info=rule("high", rule_id="r-high")),
        make_alert(5, rule_info=rule("critical", rule_id="r-critical")),
    ]
    with pagerduty() as (sink, server, _, _):
        await sink.write(alerts)
        await sink.close()
    assert [b["payload"]["severity"] for b in server.bodies] == ["error", "critical"]


async def test_retries_resend_the_same_dedup_key() -> None:
    """429 and 502 are retried; every attempt carries the same dedup_key, so no double page."""
    alert = make_alert(6)
    with pagerduty([Reply(429, "throttled"), Reply(502, "bad gateway"), ACCEPTED]) as (
        sink,
        server,
        _,
        sleeps,
    ):
        await sink.write([alert])
        await sink.close()
    assert [b["dedup_key"] for b in server.bodies] == [alert.id] * 3
    assert len(sleeps.delays) == 2


async def test_outage_is_backpressure() -> None:
    """Persistent 500s end in SinkError after max_retries retries."""
    with pagerduty([Reply(500, "error")]) as (sink, server, _, sleeps):
        with pytest.raises(SinkError, match="pagerduty: not delivered after 4 attempts"):
            await sink.write([make_alert(7)])
        await sink.close()
    assert len(server.requests) == 4 and len(sleeps.delays) == 3


async def test_invalid_event_is_rejected_for_good() -> None:
    """A 400 from PagerDuty is not retried; the alert is reported as rejected."""
    alert = make_alert(8)
    body = '{"status":"invalid event","message":"Event object is invalid"}'
    with pagerduty([Reply(400, body)]) as (sink, server, _, sleeps):
        with pytest.raises(AlertRejectedError) as info:
            await sink.write([alert])
        await sink.close()
    assert "invalid event" in info.value.rejected[alert.id]
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_suppressed_alerts_are_counted_into_the_next_page() -> None:
    """Within the window nothing pages; the first page after it carries the count."""
    with pagerduty(suppression_window_seconds=300) as (sink, server, clock, _):
        await sink.write([make_alert(9), make_alert(10), make_alert(11)])
        clock.advance(300)
        await sink.write([make_alert(12)])
        await sink.close()
    assert len(server.requests) == 2
    payload = server.bodies[1]["payload"]
    assert payload["summary"].endswith("(and 2 more suppressed)")
    assert payload["custom_details"]["suppressed_before"] == 2


async def test_secrets_and_hostile_text_are_cleaned() -> None:
    """Redaction applies to summary, details and group keys; links are defanged."""
    token = "glpat-" + "Zz9" * 7
    alert = make_alert(
        13,
        reason=f"pushed with {token} see https://evil.example/login",
        group={"user.name": "eve", "session_token": "abc123secret"},
    )
    with pagerduty() as (sink, server, _, _):
        await sink.write([alert])
        await sink.close()
    raw = server.requests[0].body.decode()
    assert token not in raw and "abc123secret" not in raw
    details = server.bodies[0]["payload"]["custom_details"]
    assert details["group"]["session_token"] == REDACTED
    assert "https://evil.example" not in server.bodies[0]["payload"]["summary"]


async def test_a_suppressed_group_pages_once_with_its_document_id() -> None:
    """Alerts of one suppression group (rule, terms, window) page once, with the group's
    document id as dedup_key, even with the sink's own suppression window off; another
    group pages on its own."""
    grouped = rule().model_copy(
        update={"suppression": Suppression(group_by=("user.name",), window_seconds=3600)}
    )
    alerts = [make_alert(n, rule_info=grouped) for n in range(4)]
    other = make_alert(9, user="bob", rule_info=grouped)
    with pagerduty(suppression_window_seconds=0) as (sink, server, _, _):
        await sink.write(alerts[:2])
        await sink.write([*alerts[2:], other])
        await sink.close()
    assert [b["dedup_key"] for b in server.bodies] == [alerts[0].document_id, other.document_id]
    assert alerts[0].document_id == alerts[3].document_id != alerts[0].id
