"""Alerts to Slack through an Incoming Webhook, as Block Kit messages.

Untrusted values go into ``plain_text`` objects (reason, title) or ``mrkdwn`` inline code
spans (field values), never into formatted text; see :mod:`detector.sinks.notify.text`.
Slack has no idempotency key, so alert ids already posted are remembered in memory (a
bounded LRU) and skipped when the runner retries a batch: best effort, a restart
forgets them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import structlog

from detector.errors import ConfigError, SinkError
from detector.models import Alert
from detector.sinks.notify.config import SlackSinkConfig, check_endpoint
from detector.sinks.notify.content import (
    alert_url,
    attack_tags,
    clock_time,
    discover_url,
    event_fields,
    rule_url,
    suppressed_note,
    wall_time,
)
from detector.sinks.notify.notifier import NotificationSink
from detector.sinks.notify.routing import Clock, RateCap, SuppressionKey, Window, suppression_key
from detector.sinks.notify.text import code, escape_mrkdwn, plain
from detector.sinks.notify.webhook import DeliveryRejectedError, Sleep

log = structlog.get_logger(__name__)

#: Slack's limits: section fields per block, header characters.
MAX_FIELDS = 10
HEADER_CHARS = 150
#: Suppressed keys listed one by one in a summary message.
SUMMARY_LINES = 10

_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "informational": "⚪"}


def _plain_text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": False}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _fallback(text: str) -> str:
    """The top-level ``text`` (notifications, screen readers): defanged and mrkdwn-safe."""
    return plain(text, 300, single_line=True).replace("&", "&amp;")


def _button(url: str, label: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [{"type": "button", "text": _plain_text(label), "url": url}],
    }


class SlackSink(NotificationSink):
    """Posts one Block Kit message per notified alert to a Slack Incoming Webhook.

    Besides routing and suppression (:class:`NotificationSink`), at most
    ``max_per_minute`` messages go out per minute; alerts beyond are counted and
    reported in one summary once the minute is over. Summaries of suppression windows
    that no later alert mentioned are sent at the start of the next batch.
    """

    name = "slack"

    def __init__(
        self, config: SlackSinkConfig, *, clock: Clock = time.time, sleep: Sleep = asyncio.sleep
    ) -> None:
        url = config.webhook_url.get_secret_value()
        try:  # again here: a config built with model_construct skipped validation
            check_endpoint(
                url,
                setting="sinks.slack.webhook_url",
                allowed_hosts=config.allowed_hosts,
                allow_http=config.allow_http,
                hint="use the Incoming Webhook URL Slack shows",
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        super().__init__(config, url, clock=clock, sleep=sleep)
        self.slack_config = config
        self.cap = RateCap(config.max_per_minute, clock=clock)

    # -- messages ---------------------------------------------------------------------------

    def message(self, alert: Alert, mentioned: int = 0) -> dict[str, Any]:
        """The webhook payload for ``alert``; ``mentioned`` suppressed alerts are noted."""
        level = alert.rule.level.lower()
        mark = _MARK.get(level, _MARK["medium"])
        headline = f"{mark} {level.upper()}: {alert.rule.title}"
        fields = [
            _mrkdwn(f"*Severity*\n{code(level, 20)}"),
            _mrkdwn(f"*Rule*\n{code(alert.rule.title, 200)}"),
        ]
        if alert.group:
            group = ", ".join(f"{k}={v}" for k, v in sorted(alert.group.items()))
            fields.append(_mrkdwn(f"*Group*\n{code(group, 300)}"))
        if alert.event_count > 1:
            fields.append(_mrkdwn(f"*Events*\n{code(alert.event_count, 20)}"))
        for name, value in event_fields(alert, self.config.fields):
            fields.append(_mrkdwn(f"*{escape_mrkdwn(name)}*\n{code(value, 200)}"))
        if tags := attack_tags(alert):
            fields.append(_mrkdwn(f"*ATT&amp;CK*\n{code(' '.join(tags), 200)}"))
        context = (
            f"alert {code(alert.id, 64)} · rule {code(alert.rule.id, 64)} · "
            f"{code(alert.timestamp.isoformat(), 40)}"
        )
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": _plain_text(plain(headline, HEADER_CHARS, single_line=True)),
            },
            {"type": "section", "text": _plain_text(plain(alert.reason, 1000))},
            {"type": "section", "fields": fields[:MAX_FIELDS]},
            {"type": "context", "elements": [_mrkdwn(context)]},
        ]
        if mentioned:
            note = suppressed_note(mentioned, self.config.suppression_window_seconds)
            blocks.append({"type": "context", "elements": [_mrkdwn(f"🔇 {escape_mrkdwn(note)}")]})
        if self.config.kibana_url:
            blocks.append(_button(alert_url(self.config.kibana_url, alert), "Open in Kibana"))
        fallback = f"[{level.upper()}] {alert.rule.title}"
        if mentioned:
            fallback += f" (and {mentioned} more)"
        return {
            "text": _fallback(fallback),
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def cap_summary(self, count: int, since: float) -> dict[str, Any]:
        """The message saying ``count`` alerts were dropped by the per-minute cap."""
        noun = "alert was" if count == 1 else "alerts were"
        text = (
            f"⚠️ *Notification cap reached*: {count} {noun} not posted to Slack since "
            f"{clock_time(since)} (limit: {self.slack_config.max_per_minute} messages per "
            "minute). They are stored in the alert index."
        )
        blocks: list[dict[str, Any]] = [{"type": "section", "text": _mrkdwn(text)}]
        if self.config.kibana_url:
            url = discover_url(self.config.kibana_url, "", wall_time(since))
            blocks.append(_button(url, "Open alerts in Kibana"))
        return {
            "text": f"Notification cap reached: {count} {noun} not posted",
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def suppression_summary(
        self, windows: Sequence[tuple[SuppressionKey, Window]]
    ) -> dict[str, Any]:
        """The message listing alerts suppressed in windows no later alert mentioned."""
        lines = []
        for key, window in windows[:SUMMARY_LINES]:
            noun = "alert" if window.suppressed == 1 else "alerts"
            target = f" for {code(key.key, 200)}" if key.key else ""
            lines.append(
                f"• {window.suppressed} more {noun} of {code(window.title, 200)}{target} "
                f"after {clock_time(window.opened_at)}"
            )
        if len(windows) > SUMMARY_LINES:
            lines.append(f"• and {len(windows) - SUMMARY_LINES} more rule/key pairs")
        total = sum(w.suppressed for _, w in windows)
        head = "🔇 *Suppressed alerts* (one notification per rule and key per window):"
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": _mrkdwn(head + "\n" + "\n".join(lines))}
        ]
        if self.config.kibana_url and len(windows) == 1:
            key, window = windows[0]
            blocks.append(
                _button(
                    rule_url(self.config.kibana_url, key.rule_id, wall_time(window.opened_at)),
                    "Open in Kibana",
                )
            )
        return {
            "text": f"{total} suppressed alert(s) not notified",
            "blocks": blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }

    # -- NotificationSink hooks ---------------------------------------------------------------

    async def _before_batch(self, alerts: Sequence[Alert]) -> None:
        overflow = self.cap.overflow()
        if overflow and self.cap.acquire(count=False):
            await self._post_summary(self.cap_summary(*overflow))
            self.cap.clear_overflow()
        # Keys with an alert in this batch get their "and N more" inline instead.
        incoming = {
            suppression_key(a, self.config.suppress_by) for a in alerts if self.route.accepts(a)
        }
        due = [(k, w) for k, w in self.suppressor.due() if k not in incoming]
        if due and self.cap.acquire(count=False):
            await self._post_summary(self.suppression_summary(due))
            for key, _ in due:
                self.suppressor.forget(key)

    async def _post_summary(self, payload: dict[str, Any]) -> None:
        """Post a summary; a refusal is logged and the summary dropped, not retried."""
        try:
            await self._http.post(payload)
        except DeliveryRejectedError as exc:
            log.error("sink_notify_summary_rejected", sink=self.name, reason=str(exc))
        except SinkError:
            self.cap.release()
            raise

    def _may_send(self) -> bool:
        return self.cap.acquire()

    def _unsent(self) -> None:
        self.cap.release()

    async def _send(self, alert: Alert, mentioned: int) -> None:
        await self._http.post(self.message(alert, mentioned))


__all__ = ["SlackSink"]
