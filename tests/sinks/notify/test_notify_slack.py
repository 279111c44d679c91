"""SlackSink against a real HTTP server on 127.0.0.1: payloads, safety, retries, floods.

Nothing is mocked: the sink's httpx client posts JSON to a stdlib server that records
every request and answers 200/429/500/404 as scripted. Time is a manual wall clock and
backoff sleeps are recorded instead of waited for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from notify_support import (
    ManualClock,
    RecordingServer,
    Reply,
    SleepLog,
    make_alert,
    rule,
)
from structlog.testing import capture_logs

from detector.errors import AlertRejectedError, SinkError
from detector.models import Sink
from detector.sinks.notify import NotifyRetryConfig, SlackSinkConfig
from detector.sinks.notify.slack import SlackSink
from detector.sinks.notify.text import REDACTED, ZWSP

FAST = NotifyRetryConfig(max_retries=3, backoff_initial=0.01, backoff_max=0.05)


@contextmanager
def slack(
    replies: list[Reply] | None = None, **overrides: Any
) -> Iterator[tuple[SlackSink, RecordingServer, ManualClock, SleepLog]]:
    """A SlackSink posting to a fresh recording server (closed afterwards)."""
    with RecordingServer(replies).running() as server:
        settings: dict[str, Any] = {
            "webhook_url": f"{server.url}/services/T1/B2/secretpart",
            "allowed_hosts": ["127.0.0.1"],
            "allow_http": True,
            "retry": FAST,
            "request_timeout": 5,
            "min_severity": "informational",
        }
        settings.update(overrides)
        clock, sleeps = ManualClock(), SleepLog()
        sink = SlackSink(SlackSinkConfig(**settings), clock=clock, sleep=sleeps)
        yield sink, server, clock, sleeps


def _texts(body: Any) -> str:
    """Every string of a JSON body, joined: what Slack would parse in some way."""
    if isinstance(body, str):
        return body + "\n"
    if isinstance(body, dict):
        return "".join(_texts(v) for v in body.values())
    if isinstance(body, list):
        return "".join(_texts(v) for v in body)
    return ""


async def test_sink_implements_the_port() -> None:
    """SlackSink satisfies the Sink protocol the runner calls."""
    with slack() as (sink, _, _, _):
        assert isinstance(sink, Sink)
        await sink.close()


async def test_block_kit_message_shape() -> None:
    """One POST per alert with a header, the reason, fields, context and a Kibana button."""
    alert = make_alert(1)
    with slack(kibana_url="https://kibana.example.com/s/soc/") as (sink, server, _, _):
        await sink.write([alert])
        await sink.close()
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request.path == "/services/T1/B2/secretpart"
    assert request.headers["content-type"] == "application/json"
    body = request.json
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert body["text"].startswith("[HIGH] Credential used")
    header, reason, fields, context, button = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith("🟠 HIGH: Credential used from an unusual address")
    assert len(header["text"]["text"]) <= 150
    assert reason["text"]["type"] == "plain_text"
    assert reason["text"]["text"].startswith("alice signed in from 203.0.113.7")
    labels = [f["text"].split("\n")[0] for f in fields["fields"]]
    assert labels[:4] == ["*Severity*", "*Rule*", "*user.name*", "*source.ip*"]
    assert "*ATT&amp;CK*" in labels and len(labels) <= 10
    assert all(f["type"] == "mrkdwn" for f in fields["fields"])
    assert "*user.name*\n`alice`" in [f["text"] for f in fields["fields"]]
    assert alert.id in context["elements"][0]["text"]
    url = button["elements"][0]["url"]
    assert url.startswith("https://kibana.example.com/s/soc/app/discover#/?_g=")
    assert f"event.id:%22{alert.id}%22" in url


async def test_hostile_alert_content_cannot_ping_link_or_format() -> None:
    """Mentions, broadcasts, links and markup from event fields reach Slack as inert text."""
    hostile = "<!channel> @here <@U024BE7LH> <#C024BE7LH|ops> <http://evil.example|click> `x` *b*"
    alert = make_alert(
        2,
        user="<!everyone> `@channel`",
        ip="<https://evil.example/login>",
        reason=f"{hostile}\nvisit https://evil.example/reset now",
        agent="Mozilla <!subteam^S123> www.evil.example",
    )
    with slack() as (sink, server, _, _):
        await sink.write([alert])
        await sink.close()
    body = server.requests[0].json
    text = _texts(body)
    # No Slack control sequence anywhere: no <!..>, <@..>, <#..>, <scheme:..>, <..|..>.
    assert not re.search(r"<[!@#]|<[a-z]+:|<[^>\n]*\|", text)
    assert "<" not in text and ">" not in text
    assert not re.search(r"@(channel|here|everyone)", text)
    # mrkdwn values sit in exactly one code span each.
    for field in body["blocks"][2]["fields"]:
        value = field["text"].split("\n", 1)[1]
        assert value.count("`") == 2 and value.startswith("`") and value.endswith("`")
    # plain_text reason: URLs and domains broken so clients cannot auto-link them.
    reason = body["blocks"][1]["text"]["text"]
    assert "https://evil.example" not in reason and "www.evil.example" not in reason
    assert f"https:{ZWSP}//evil.{ZWSP}example" in reason


async def test_secrets_in_alerts_are_redacted_before_sending() -> None:
    """Tokens in the reason and event fields never reach the webhook."""
    github = "ghp_" + "A1b2C3d4E5" * 3 + "F6g7H8"
    alert = make_alert(
        3,
        reason=f"token {github} used with password=hunter2",
        agent="curl Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig123",
    )
    with slack() as (sink, server, _, _):
        await sink.write([alert])
        await sink.close()
    raw = server.requests[0].body.decode()
    assert github not in raw and "hunter2" not in raw and "eyJzdWIiOiIxIn0" not in raw
    assert REDACTED in raw


async def test_throttling_and_errors_are_retried_honouring_retry_after() -> None:
    """429 with Retry-After, then 500, then 200: delivered once, first wait >= Retry-After."""
    script = [
        Reply(429, "rate_limited", {"Retry-After": "7"}),
        Reply(500, "rollup_error"),
        Reply(200),
    ]
    with slack(script) as (sink, server, _, sleeps):
        await sink.write([make_alert(4)])
        await sink.close()
    assert len(server.requests) == 3
    assert server.bodies[0] == server.bodies[2]
    assert 7 <= sleeps.delays[0] <= 7.05  # Retry-After plus a little jitter
    assert 0 <= sleeps.delays[1] <= FAST.backoff_initial * 2


async def test_retry_after_beyond_the_bound_is_backpressure_at_once() -> None:
    """A Retry-After longer than max_retry_after ends the attempt with SinkError, no sleep."""
    with slack([Reply(429, "rate_limited", {"Retry-After": "3600"})]) as (sink, server, _, sleeps):
        with pytest.raises(SinkError, match="rate limited for 3600s"):
            await sink.write([make_alert(5)])
        await sink.close()
    assert len(server.requests) == 1 and sleeps.delays == []


async def test_outage_raises_sink_error_and_a_retried_batch_is_not_reposted() -> None:
    """After the retry bound: SinkError. The runner's retry of the batch posts only the rest.

    The first alert goes through, the second meets a persistent 503; when the batch is
    written again the first is remembered as posted and not sent twice.
    """
    alerts = [make_alert(6, user="u6"), make_alert(7, user="u7")]
    script = [Reply(200), Reply(503, "down"), Reply(503), Reply(503), Reply(503), Reply(200)]
    with slack(script) as (sink, server, _, sleeps):
        with pytest.raises(SinkError, match="not delivered after 4 attempts: HTTP 503"):
            await sink.write(alerts)
        assert len(sleeps.delays) == 3
        await sink.write(alerts)
        await sink.close()
    users = [json.dumps(b) for b in server.bodies]
    assert len(users) == 6
    assert sum("u6" in u for u in users) == 1
    assert "u7" in users[-1]


async def test_connection_refused_is_a_sink_error() -> None:
    """An endpoint that is not listening fails with SinkError after the retry bound."""
    with slack() as (sink, server, _, sleeps):
        pass  # the server is stopped: its port now refuses connections
    with pytest.raises(SinkError, match="ConnectError"):
        await sink.write([make_alert(8)])
    await sink.close()
    assert len(sleeps.delays) == FAST.max_retries
    assert server.requests == []


async def test_refused_message_is_rejected_without_blocking_the_others() -> None:
    """A 404 for one alert is reported as AlertRejectedError; the other alerts are posted."""
    alerts = [make_alert(9, user="a"), make_alert(10, user="b")]
    with slack([Reply(404, "channel_not_found"), Reply(200)]) as (sink, server, _, _):
        with pytest.raises(AlertRejectedError) as info:
            await sink.write(alerts)
        await sink.close()
    assert list(info.value.rejected) == [alerts[0].id]
    assert "channel_not_found" in info.value.rejected[alerts[0].id]
    assert len(server.requests) == 2


async def test_suppression_window_counts_and_summarizes_inline() -> None:
    """Same rule and user within 15 min: one message; the next one after says "and 2 more"."""
    with slack() as (sink, server, clock, _):
        await sink.write([make_alert(11), make_alert(12)])
        clock.advance(600)
        await sink.write([make_alert(13)])
        assert len(server.requests) == 1
        clock.advance(301)  # past the 900 s window opened by the first message
        await sink.write([make_alert(14)])
        await sink.close()
    assert len(server.requests) == 2
    last = server.bodies[1]
    assert last["text"].endswith("(and 2 more)")
    notes = [b for b in last["blocks"] if b["type"] == "context"]
    assert "and 2 more alerts of this rule for the same key" in notes[-1]["elements"][0]["text"]


async def test_suppression_is_per_rule_and_key() -> None:
    """Other users, other source addresses and other rules are not suppressed."""
    other_rule = rule(rule_id="11111111-2222-4333-8444-555555555555")
    alerts = [
        make_alert(15),
        make_alert(16, user="bob"),
        make_alert(17, ip="198.51.100.9"),
        make_alert(18, rule_info=other_rule),
        make_alert(19),  # same rule, user and address as the first: suppressed
    ]
    with slack() as (sink, server, _, _):
        await sink.write(alerts)
        await sink.close()
    assert len(server.requests) == 4


async def test_correlation_alerts_use_their_group_key() -> None:
    """Alerts of a correlation rule are suppressed per group key, whatever their events say."""
    alerts = [
        make_alert(20, user="x", group={"user.name": "mallory"}),
        make_alert(21, user="y", group={"user.name": "mallory"}),
        make_alert(22, user="x", group={"user.name": "trent"}),
    ]
    with slack() as (sink, server, _, _):
        await sink.write(alerts)
        await sink.close()
    assert len(server.requests) == 2
    fields = [f["text"] for f in server.bodies[0]["blocks"][2]["fields"]]
    assert "*Group*\n`user.name=mallory`" in fields
    assert "*Events*\n`3`" in fields


async def test_expired_windows_are_summarized_when_no_later_alert_comes() -> None:
    """A window with suppressed alerts and no successor gets its own summary message."""
    with slack() as (sink, server, clock, _):
        await sink.write([make_alert(23), make_alert(24), make_alert(25)])
        clock.advance(901)
        await sink.write([make_alert(26, user="carol")])
        clock.advance(10)
        await sink.write([make_alert(27, user="dave")])
        await sink.close()
    assert len(server.requests) == 4  # alice, summary, carol, dave: one summary only
    summary = server.bodies[1]
    text = summary["blocks"][0]["text"]["text"]
    assert "Suppressed alerts" in text
    assert "2 more alerts of `Credential used from an unusual address`" in text
    assert "`user.name=alice, source.ip=203.0.113.7`" in text


async def test_per_minute_cap_drops_and_reports_the_overflow() -> None:
    """Beyond max_per_minute the alerts are counted; the next minute opens with a summary."""
    alerts = [make_alert(30 + i, user=f"user{i}") for i in range(5)]
    with slack(max_per_minute=3) as (sink, server, clock, _):
        await sink.write(alerts)
        assert len(server.requests) == 3
        await sink.write(alerts)  # a retried batch: nothing new, nothing counted twice
        clock.advance(61)
        await sink.write([make_alert(40, user="late")])
        await sink.close()
    assert len(server.requests) == 5
    summary = server.bodies[3]
    assert "Notification cap reached" in summary["text"]
    assert "2 alerts were not posted" in summary["blocks"][0]["text"]["text"]
    assert "limit: 3 messages per minute" in summary["blocks"][0]["text"]["text"]
    assert "late" in json.dumps(server.bodies[4])


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"min_severity": "high"}, ["high", "critical"]),
        ({"min_severity": "critical"}, ["critical"]),
        ({"include_tags": ["attack.credential-access"]}, ["low", "high"]),
        ({"include_tags": ["attack.t15*"]}, ["medium"]),
        ({"exclude_tags": ["attack.credential-access"]}, ["informational", "medium", "critical"]),
    ],
)
async def test_routing_by_severity_and_tags(settings: dict[str, Any], expected: list[str]) -> None:
    """Only alerts at or above min_severity and matching the tag filters are posted."""
    tags = {
        "informational": ("attack.discovery",),
        "low": ("attack.credential-access",),
        "medium": ("attack.t1552.001",),
        "high": ("attack.credential-access", "attack.t1078"),
        "critical": ("attack.persistence",),
    }
    alerts = [
        make_alert(50 + i, rule_info=rule(level, tags[level], rule_id=f"rule-{level}"))
        for i, level in enumerate(tags)
    ]
    with slack(**settings) as (sink, server, _, _):
        await sink.write(alerts)
        await sink.close()
    posted = [
        b["blocks"][0]["text"]["text"].split(":")[0].split()[-1].lower() for b in server.bodies
    ]
    assert posted == expected


async def test_logs_never_contain_the_webhook_secret() -> None:
    """Retries and failures are logged without the webhook URL or its secret path."""
    with slack([Reply(500, "oops")]) as (sink, _, _, _), capture_logs() as logs:
        with pytest.raises(SinkError) as info:
            await sink.write([make_alert(60)])
        await sink.close()
    assert logs and "secretpart" not in repr(logs)
    assert "secretpart" not in str(info.value)


async def test_closed_sink_refuses_writes() -> None:
    """write() after close() is a SinkError; close() is idempotent."""
    with slack() as (sink, _, _, _):
        await sink.close()
        await sink.close()
        with pytest.raises(SinkError, match="closed"):
            await sink.write([make_alert(61)])
