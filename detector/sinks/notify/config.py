"""Configuration of the notification sinks: ``sinks.slack`` and ``sinks.pagerduty``.

Endpoints are checked at start against a host allowlist: a webhook URL pointing
anywhere else (a typo, or a configuration an attacker could influence) would send alert
details to a stranger. Inputs are hidden from validation errors because the webhook URL
and the routing key are credentials.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from detector.models.alerts import Level
from detector.sinks.envlist import EnvList
from detector.sinks.retry import RetryConfig

_DEFAULT_FIELDS = (
    "user.name",
    "source.ip",
    "user_agent.original",
    "event.action",
    "event.dataset",
    "cloud.account.id",
    "host.name",
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(
    url: str, *, setting: str, allowed_hosts: list[str], allow_http: bool, hint: str
) -> None:
    """Raise ``ValueError`` (saying how to fix it) unless ``url`` may receive alerts.

    It must be ``https`` (``http`` only with ``allow_http`` and a loopback host, for
    tests), carry no user info, and its host must be one of ``allowed_hosts`` exactly.
    The message names the host, never the rest of the URL (which holds the secret).
    """
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise ValueError(f"{setting} is not a valid URL; {hint}") from None
    allowed = ", ".join(allowed_hosts) or "(none)"
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{setting} must not contain user:password@; {hint}")
    if parts.scheme == "http" and allow_http and not _is_loopback(host):
        raise ValueError(
            f"{setting} uses http with host {host!r}: allow_http is only for loopback hosts "
            "(127.0.0.1, ::1, localhost) in tests; use https"
        )
    if parts.scheme != "https" and not (parts.scheme == "http" and allow_http):
        raise ValueError(f"{setting} must be an https URL; {hint}")
    if host not in {h.lower() for h in allowed_hosts}:
        raise ValueError(
            f"{setting} host {host!r} is not in allowed_hosts ({allowed}); {hint}, or add "
            "the host to allowed_hosts if it is a relay you run and trust"
        )


class NotifyRetryConfig(RetryConfig):
    """The retry policy for 429, 5xx and connection errors, and how long a ``Retry-After``
    may be honoured in place."""

    max_retries: int = Field(default=4, ge=0, le=20)
    #: Longest ``Retry-After`` honoured in place; a longer one ends the attempt at once
    #: with ``SinkError`` (the runner pauses and retries the batch later).
    max_retry_after: float = Field(default=60.0, ge=0)


class NotifyConfig(BaseModel):
    """Settings common to the notification sinks: routing, suppression, HTTP behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    #: Lowest Sigma level notified.
    min_severity: Level = "medium"
    #: Notify only alerts with a rule tag matching one of these ``fnmatch`` patterns
    #: (e.g. ``attack.credential-access``, ``attack.t1552*``); empty = every tag.
    include_tags: EnvList = Field(default_factory=list)
    #: Never notify alerts with a rule tag matching one of these patterns.
    exclude_tags: EnvList = Field(default_factory=list)
    #: One notification per rule and key per window (wall clock); 0 turns it off.
    suppression_window_seconds: float = Field(default=900.0, ge=0)
    #: ECS fields of the first event forming the key of a single-event alert
    #: (correlation alerts use their group key).
    suppress_by: EnvList = Field(default_factory=lambda: ["user.name", "source.ip"])
    #: ECS fields of the first event shown in the notification.
    fields: EnvList = Field(default_factory=lambda: list(_DEFAULT_FIELDS), max_length=8)
    #: Kibana base URL (e.g. ``https://kibana.example.com`` or ``.../s/<space>``): adds
    #: a link to the alert in Discover.
    kibana_url: str | None = None
    #: Seconds per HTTP request (connect, write, read and pool wait each).
    request_timeout: float = Field(default=10.0, gt=0)
    retry: NotifyRetryConfig = Field(default_factory=NotifyRetryConfig)
    #: Alert ids remembered as already handled, so a retried batch is not re-notified.
    dedup_cache_size: int = Field(default=10_000, ge=1)
    #: Exact host names the endpoint may point to.
    allowed_hosts: EnvList = Field(default_factory=list)
    #: Accept ``http://`` endpoints on loopback hosts only (local test servers).
    allow_http: bool = False

    @field_validator("kibana_url")
    @classmethod
    def _check_kibana_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("kibana_url must be an http(s) URL such as https://kibana.example.com")
        return value.rstrip("/")


class SlackSinkConfig(NotifyConfig):
    """``sinks.slack``: alerts posted to a Slack Incoming Webhook as Block Kit messages.

    Environment example: ``DETECTOR_SINKS__SLACK__WEBHOOK_URL=https://hooks.slack.com/...``.
    """

    #: The Incoming Webhook URL (a credential: anyone holding it can post).
    webhook_url: SecretStr
    allowed_hosts: EnvList = Field(default_factory=lambda: ["hooks.slack.com"])
    #: Messages per minute at most (alerts and summaries together); the alerts beyond are
    #: counted and reported in one summary message once the minute is over.
    max_per_minute: int = Field(default=20, ge=2)

    @model_validator(mode="after")
    def _check_webhook(self) -> SlackSinkConfig:
        check_endpoint(
            self.webhook_url.get_secret_value(),
            setting="webhook_url",
            allowed_hosts=self.allowed_hosts,
            allow_http=self.allow_http,
            hint="use the Incoming Webhook URL Slack shows (https://hooks.slack.com/services/...)",
        )
        return self


class PagerDutySinkConfig(NotifyConfig):
    """``sinks.pagerduty``: alerts as PagerDuty Events API v2 ``trigger`` events.

    Environment example: ``DETECTOR_SINKS__PAGERDUTY__ROUTING_KEY=<integration key>``.
    """

    #: The Events API v2 integration key of the service (a credential).
    routing_key: SecretStr
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    allowed_hosts: EnvList = Field(
        default_factory=lambda: ["events.pagerduty.com", "events.eu.pagerduty.com"]
    )
    min_severity: Level = "high"
    #: ``payload.source`` of every event: the system that detected the problem.
    source: str = Field(default="detector", min_length=1, max_length=255)

    @field_validator("routing_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError(
                "routing_key is empty; set the service's Events API v2 integration key"
            )
        return value

    @model_validator(mode="after")
    def _check_events_url(self) -> PagerDutySinkConfig:
        check_endpoint(
            self.events_url,
            setting="events_url",
            allowed_hosts=self.allowed_hosts,
            allow_http=self.allow_http,
            hint="use https://events.pagerduty.com/v2/enqueue (or events.eu.pagerduty.com)",
        )
        return self


__all__ = [
    "NotifyConfig",
    "NotifyRetryConfig",
    "PagerDutySinkConfig",
    "SlackSinkConfig",
    "check_endpoint",
]
