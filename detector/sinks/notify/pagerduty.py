"""Alerts to PagerDuty as Events API v2 ``trigger`` events.

``dedup_key`` is the alert's document id (the alert id, or its suppression group's
document), so PagerDuty itself makes re-delivery idempotent: a retried batch, a restart
that re-processes the same events, or a later alert of a suppressed group adds nothing
to an incident that is open (PagerDuty ignores a ``trigger`` whose key is already open).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from detector.errors import ConfigError
from detector.models import Alert
from detector.sinks.notify.config import PagerDutySinkConfig, check_endpoint
from detector.sinks.notify.content import alert_url, event_fields
from detector.sinks.notify.notifier import NotificationSink
from detector.sinks.notify.routing import PAGERDUTY_SEVERITY, Clock, lookup
from detector.sinks.notify.text import REDACTED, clean, is_secret_key, plain, truncate
from detector.sinks.notify.webhook import Sleep

#: PagerDuty's limit on ``payload.summary``.
SUMMARY_CHARS = 1024


class PagerDutySink(NotificationSink):
    """Sends one ``trigger`` event per notified alert (routing, suppression: see base)."""

    name = "pagerduty"

    def __init__(
        self, config: PagerDutySinkConfig, *, clock: Clock = time.time, sleep: Sleep = asyncio.sleep
    ) -> None:
        try:  # again here: a config built with model_construct skipped validation
            check_endpoint(
                config.events_url,
                setting="sinks.pagerduty.events_url",
                allowed_hosts=config.allowed_hosts,
                allow_http=config.allow_http,
                hint="use https://events.pagerduty.com/v2/enqueue",
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        super().__init__(config, config.events_url, clock=clock, sleep=sleep)
        self.pd_config = config

    def event(self, alert: Alert, mentioned: int = 0) -> dict[str, Any]:
        """The Events API v2 body for ``alert``; ``mentioned`` suppressed alerts are noted."""
        level = alert.rule.level.lower()
        summary = f"[{level.upper()}] {alert.rule.title}: {alert.reason}"
        if mentioned:
            summary += f" (and {mentioned} more suppressed)"
        details: dict[str, Any] = {
            "alert_id": alert.id,
            "rule_id": alert.rule.id,
            "rule_title": plain(alert.rule.title, 300),
            "level": level,
            "reason": plain(alert.reason, 2000),
            "tags": [truncate(clean(t), 100) for t in alert.rule.tags],  # rule text
            "event_count": alert.event_count,
        }
        if alert.group:
            details["group"] = {
                plain(k, 100): REDACTED if is_secret_key(k) else plain(v, 300)
                for k, v in sorted(alert.group.items())
            }
        if alert.window_start and alert.window_end:
            details["window"] = {
                "start": alert.window_start.isoformat(),
                "end": alert.window_end.isoformat(),
            }
        for name, value in event_fields(alert, self.config.fields):
            details[name] = plain(value, 300, single_line=True)
        if mentioned:
            details["suppressed_before"] = mentioned
        payload: dict[str, Any] = {
            "summary": plain(summary, SUMMARY_CHARS, single_line=True),
            "source": self.pd_config.source,
            "severity": PAGERDUTY_SEVERITY.get(level, "warning"),
            "timestamp": alert.timestamp.isoformat(),
            "class": alert.rule.type,
            "custom_details": details,
        }
        dataset = lookup(alert.events[0], "event.dataset") if alert.events else None
        if dataset:
            payload["component"] = plain(dataset, 100, single_line=True)
        body: dict[str, Any] = {
            "routing_key": self.pd_config.routing_key.get_secret_value(),
            "event_action": "trigger",
            "dedup_key": alert.document_id,
            "client": "detector",
            "payload": payload,
        }
        if self.config.kibana_url:
            body["client_url"] = self.config.kibana_url
            body["links"] = [
                {"href": alert_url(self.config.kibana_url, alert), "text": "Alert in Kibana"}
            ]
        return body

    async def _send(self, alert: Alert, mentioned: int) -> None:
        await self._http.post(self.event(alert, mentioned))


__all__ = ["PagerDutySink"]
