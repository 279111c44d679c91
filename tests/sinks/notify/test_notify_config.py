"""Notification sink settings: endpoint allowlist, secrets, environment parsing."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from detector.errors import ConfigError
from detector.sinks.notify import PagerDutySinkConfig, SlackSinkConfig
from detector.sinks.notify.pagerduty import PagerDutySink
from detector.sinks.notify.slack import SlackSink

HOOK = "https://hooks.slack.com/services/T0001/B0002/s3cretPathPart"
KEY = SecretStr("R" * 32)


def test_slack_webhook_defaults_to_the_slack_host() -> None:
    """A real Incoming Webhook URL is accepted with the default allowlist."""
    config = SlackSinkConfig(webhook_url=HOOK)  # type: ignore[arg-type]
    assert config.allowed_hosts == ["hooks.slack.com"]
    assert config.min_severity == "medium"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://hooks.slack.com.evil.example/services/T/B/X", "not in allowed_hosts"),
        ("https://evil.example/services/T/B/X", "not in allowed_hosts"),
        ("http://hooks.slack.com/services/T/B/X", "must be an https URL"),
        ("https://user:pw@hooks.slack.com/services/T/B/X", "must not contain user:password@"),
        ("ftp://hooks.slack.com/x", "must be an https URL"),
    ],
)
def test_webhook_outside_the_allowlist_is_refused(url: str, message: str) -> None:
    """A webhook on another host or scheme fails validation, saying how to fix it."""
    with pytest.raises(ValidationError, match=message) as info:
        SlackSinkConfig(webhook_url=url)  # type: ignore[arg-type]
    text = str(info.value)
    assert "hooks.slack.com/services/..." in text  # the fix: the URL shape Slack gives
    assert "/services/T/B/X" not in text  # the secret part never appears


def test_validation_errors_do_not_echo_the_secret() -> None:
    """Input values are hidden from error messages: the webhook path is a credential."""
    with pytest.raises(ValidationError) as info:
        SlackSinkConfig(webhook_url="https://evil.example/T/B/s3cretPathPart", min_severity="x")  # type: ignore[arg-type]
    assert "s3cretPathPart" not in str(info.value)


def test_http_is_only_for_loopback_when_explicitly_allowed() -> None:
    """``allow_http`` admits a loopback test server, never a remote http host."""
    ok = SlackSinkConfig(
        webhook_url="http://127.0.0.1:8080/hook",  # type: ignore[arg-type]
        allowed_hosts=["127.0.0.1"],
        allow_http=True,
    )
    assert ok.allow_http
    with pytest.raises(ValidationError, match="only for loopback"):
        SlackSinkConfig(
            webhook_url="http://hooks.example/hook",  # type: ignore[arg-type]
            allowed_hosts=["hooks.example"],
            allow_http=True,
        )
    with pytest.raises(ValidationError, match="https"):
        SlackSinkConfig(
            webhook_url="http://127.0.0.1:8080/hook",  # type: ignore[arg-type]
            allowed_hosts=["127.0.0.1"],
        )


def test_pagerduty_defaults_and_allowlist() -> None:
    """The default events URL and the EU host pass; another host does not."""
    config = PagerDutySinkConfig(routing_key=KEY)
    assert config.events_url == "https://events.pagerduty.com/v2/enqueue"
    assert config.min_severity == "high"
    PagerDutySinkConfig(routing_key=KEY, events_url="https://events.eu.pagerduty.com/v2/enqueue")
    with pytest.raises(ValidationError, match=r"events\.pagerduty\.com/v2/enqueue"):
        PagerDutySinkConfig(routing_key=KEY, events_url="https://pd.evil.example/v2/enqueue")
    with pytest.raises(ValidationError, match="routing_key is empty"):
        PagerDutySinkConfig(routing_key=" ")  # type: ignore[arg-type]


def test_secrets_stay_out_of_reprs() -> None:
    """The webhook URL and the routing key print as stars."""
    slack = SlackSinkConfig(webhook_url=HOOK)  # type: ignore[arg-type]
    pagerduty = PagerDutySinkConfig(routing_key="0123456789abcdef0123456789abcdef")  # type: ignore[arg-type]
    assert "s3cretPathPart" not in repr(slack) + str(slack.model_dump())
    assert "0123456789abcdef" not in repr(pagerduty) + str(pagerduty.model_dump())


def test_sinks_recheck_configs_that_skipped_validation() -> None:
    """A config built without validation still cannot point a sink outside the allowlist."""
    slack = SlackSinkConfig.model_construct(
        webhook_url=SecretStr("https://evil.example/x"),
        allowed_hosts=["hooks.slack.com"],
        allow_http=False,
    )
    with pytest.raises(ConfigError, match="not in allowed_hosts"):
        SlackSink(slack)
    pagerduty = PagerDutySinkConfig.model_construct(
        events_url="https://evil.example/v2/enqueue",
        allowed_hosts=["events.pagerduty.com"],
        allow_http=False,
    )
    with pytest.raises(ConfigError, match="not in allowed_hosts"):
        PagerDutySink(pagerduty)


class _Settings(BaseSettings):
    """A stand-in for the application settings: the same prefix and nesting delimiter."""

    model_config = SettingsConfigDict(env_prefix="DETECTOR_", env_nested_delimiter="__")

    slack: SlackSinkConfig | None = None
    pagerduty: PagerDutySinkConfig | None = None


def test_environment_variables_configure_both_sinks(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DETECTOR_..__WEBHOOK_URL`` and comma-separated lists work from the environment."""
    monkeypatch.setenv("DETECTOR_SLACK__WEBHOOK_URL", HOOK)
    monkeypatch.setenv("DETECTOR_SLACK__INCLUDE_TAGS", "attack.credential-access, attack.t1552*")
    monkeypatch.setenv("DETECTOR_SLACK__MIN_SEVERITY", "high")
    monkeypatch.setenv("DETECTOR_SLACK__SUPPRESSION_WINDOW_SECONDS", "600")
    monkeypatch.setenv("DETECTOR_PAGERDUTY__ROUTING_KEY", "R" * 32)
    monkeypatch.setenv("DETECTOR_PAGERDUTY__ALLOWED_HOSTS", '["events.pagerduty.com"]')
    settings = _Settings()
    assert settings.slack is not None and settings.pagerduty is not None
    assert settings.slack.include_tags == ["attack.credential-access", "attack.t1552*"]
    assert settings.slack.min_severity == "high"
    assert settings.slack.suppression_window_seconds == 600
    assert settings.pagerduty.allowed_hosts == ["events.pagerduty.com"]
    assert settings.pagerduty.routing_key == KEY
