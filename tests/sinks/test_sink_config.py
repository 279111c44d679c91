"""Sink configuration models: parsing of hosts, credentials rules, secrets kept out of reprs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from detector.sinks import ElasticsearchSinkConfig, OpenSearchSinkConfig, SinksConfig


def test_hosts_accept_comma_separated_and_json_lists() -> None:
    """An environment string may list hosts with commas or as a JSON array."""
    assert ElasticsearchSinkConfig(hosts="http://a:9200, http://b:9200").hosts == [  # type: ignore[arg-type]
        "http://a:9200",
        "http://b:9200",
    ]
    assert OpenSearchSinkConfig(hosts='["http://c:9200"]').hosts == ["http://c:9200"]  # type: ignore[arg-type]


def test_password_without_username_is_refused() -> None:
    """Half a credential is a configuration error, not a silent anonymous connection."""
    with pytest.raises(ValidationError, match="together"):
        ElasticsearchSinkConfig(password="x")  # type: ignore[arg-type]


def test_secrets_do_not_leak_into_repr() -> None:
    """API keys and passwords print as stars."""
    config = SinksConfig(
        elasticsearch=ElasticsearchSinkConfig(
            api_key="c2VjcmV0",
            username="u",
            password="p4ss",  # type: ignore[arg-type]
        )
    )
    assert "c2VjcmV0" not in repr(config)
    assert "p4ss" not in repr(config)
    assert config.elasticsearch is not None
    assert config.elasticsearch.basic_auth == ("u", "p4ss")


def test_index_names_are_validated() -> None:
    """Index names the engines would refuse (upper case, leading dash) fail at start-up."""
    with pytest.raises(ValidationError):
        OpenSearchSinkConfig(index="Alerts")
    with pytest.raises(ValidationError):
        OpenSearchSinkConfig(index="-alerts")
