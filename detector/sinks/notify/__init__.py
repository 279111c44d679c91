"""Alert notifications for people on call: Slack (Block Kit) and PagerDuty (Events API v2).

Both sinks implement :class:`detector.models.Sink` and share one write loop
(:mod:`~detector.sinks.notify.notifier`): per-sink routing by severity and tags,
suppression windows per rule and key, bounded retries with jitter, secret redaction
and escaping of attacker-controlled text (:mod:`~detector.sinks.notify.text`), and an
endpoint host allowlist checked at start (:mod:`~detector.sinks.notify.config`).

This package root only exports the configuration models, so that the sinks'
configuration module can import them without loading HTTP code; import the sinks
from :mod:`detector.sinks.notify.slack` and :mod:`detector.sinks.notify.pagerduty`.
"""

from detector.sinks.notify.config import (
    NotifyConfig,
    NotifyRetryConfig,
    PagerDutySinkConfig,
    SlackSinkConfig,
)

__all__ = ["NotifyConfig", "NotifyRetryConfig", "PagerDutySinkConfig", "SlackSinkConfig"]
