"""Configuration of the alert sinks (each adapter owns its section of the settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from detector.sinks.documents import DEFAULT_INDEX
from detector.sinks.envlist import EnvList
from detector.sinks.notify.config import PagerDutySinkConfig, SlackSinkConfig
from detector.sinks.retry import RetryConfig


class SearchSinkConfig(BaseModel):
    """Settings common to the Elasticsearch and OpenSearch sinks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Node URLs; from the environment either a JSON list or comma-separated URLs.
    hosts: EnvList = Field(default_factory=lambda: ["http://localhost:9200"], min_length=1)
    #: Write alias; the template covers ``<index>-*`` and ``<index>-000001`` is created first.
    index: str = Field(default=DEFAULT_INDEX, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    username: str | None = None
    password: SecretStr | None = None
    verify_certs: bool = True
    #: Path of a PEM bundle of CA certificates for https hosts.
    ca_certs: Path | None = None
    #: Seconds per HTTP request.
    request_timeout: float = Field(default=30.0, gt=0)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    #: Install the template and create the alias at start (needs manage-template privileges).
    setup: bool = True
    shards: int = Field(default=1, ge=1)
    #: ``None`` keeps the engine default (1); a single-node cluster is then yellow, which is fine.
    replicas: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _password_needs_user(self) -> SearchSinkConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be set together")
        return self

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """``(username, password)`` when both are set."""
        if self.username is None or self.password is None:
            return None
        return (self.username, self.password.get_secret_value())


class ElasticsearchSinkConfig(SearchSinkConfig):
    """``sinks.elasticsearch``: alerts to Elasticsearch 8 or 9 through the official client."""

    #: Base64 ``id:api_key`` as Kibana shows it ("encoded"); wins over username/password.
    api_key: SecretStr | None = None


class OpenSearchSinkConfig(SearchSinkConfig):
    """``sinks.opensearch``: alerts to OpenSearch 2 or 3 through opensearch-py.

    OpenSearch has no Elasticsearch-style API keys; use basic auth (security plugin) or
    none (plugin disabled, local use only).
    """


class JsonLinesSinkConfig(BaseModel):
    """``sinks.jsonl``: alerts appended as JSON lines to a local file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: File the alerts are appended to (created with its folder).
    path: Path = Path("alerts.jsonl")
    #: fsync after each batch so a committed offset never outlives its alert on power loss.
    fsync: bool = True


class SinksConfig(BaseModel):
    """The ``sinks`` section: every configured sink receives every alert.

    A section left out (``None``) is off. Environment example:
    ``DETECTOR_SINKS__ELASTICSEARCH__HOSTS=http://elasticsearch:9200``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    elasticsearch: ElasticsearchSinkConfig | None = None
    opensearch: OpenSearchSinkConfig | None = None
    jsonl: JsonLinesSinkConfig | None = None
    slack: SlackSinkConfig | None = None
    pagerduty: PagerDutySinkConfig | None = None


__all__ = [
    "ElasticsearchSinkConfig",
    "JsonLinesSinkConfig",
    "OpenSearchSinkConfig",
    "PagerDutySinkConfig",
    "RetryConfig",
    "SinksConfig",
    "SlackSinkConfig",
]
