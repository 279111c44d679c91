"""Confluent Schema Registry client: schema ids to Avro schema definitions over HTTP.

``GET /schemas/ids/{id}`` with basic auth or a bearer token, over TLS with a CA file (and
an optional client certificate). Answers are cached in a bounded LRU: a found schema for
good (ids are immutable), a "not found" for ``negative_cache_seconds``. An outage (no
connection, a timeout, 429, 5xx, or refused credentials) raises
:class:`SchemaRegistryUnavailableError`, which the runner retries with backpressure: a
record is never dead-lettered because the registry blinked.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import httpx
import orjson
import structlog
from pydantic import BaseModel, Field, HttpUrl, SecretStr, model_validator

from detector.errors import ConfigError, SchemaRegistryUnavailableError
from detector.sources.kafkasecurity import one_of, secret, tls_context

log = structlog.get_logger(__name__)

#: ``error_code`` of a Confluent-compatible registry's 404 for an id it does not hold.
SCHEMA_NOT_FOUND = 40403


class SchemaRegistryConfig(BaseModel):
    """``decode.schema_registry``: where unknown Confluent schema ids are resolved.

    ``url`` is the registry's base URL (Confluent Cloud: the Schema Registry endpoint;
    Apicurio: ``.../apis/ccompat/v7``). Authenticate with ``username``/``password``
    (basic; Confluent Cloud API key and secret) or ``bearer_token`` (each also ``*_file``).
    """

    url: HttpUrl
    username: str | None = None
    username_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    bearer_token: SecretStr | None = None
    bearer_token_file: Path | None = None
    #: PEM CA bundle for an https registry; the system store when unset.
    ca_file: Path | None = None
    #: Client certificate and key (PEM) for a registry that requires mTLS.
    cert_file: Path | None = None
    key_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)
    #: Schemas (found or not) remembered; the least recently used is forgotten first.
    cache_size: int = Field(default=1000, ge=1)
    #: How long a "not found" answer is trusted before the id is asked again.
    negative_cache_seconds: float = Field(default=300.0, ge=0)
    #: Requests in flight at once while a batch's unknown ids are resolved.
    max_concurrency: int = Field(default=4, ge=1)

    @model_validator(mode="after")
    def _auth(self) -> Self:
        basic = any(
            v is not None
            for v in (self.username, self.username_file, self.password, self.password_file)
        )
        bearer = self.bearer_token is not None or self.bearer_token_file is not None
        if basic and bearer:
            raise ValueError("use basic auth (username/password) or bearer_token, not both")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (the client certificate)")
        one_of(self.username, self.username_file, "username")
        one_of(self.password, self.password_file, "password")
        one_of(self.bearer_token, self.bearer_token_file, "bearer_token")
        return self


@dataclass(frozen=True, slots=True)
class RegisteredSchema:
    """What the registry holds under one id: an Avro definition, or ``None`` if not found.

    ``problem`` says why a found schema cannot be used (e.g. a Protobuf schema).
    """

    schema_id: int
    definition: Mapping[str, Any] | None
    problem: str = ""


class SchemaRegistryClient:
    """Resolves schema ids with an async httpx client; use :meth:`close` when done."""

    def __init__(self, config: SchemaRegistryConfig) -> None:
        self.config = config
        self.base_url = str(config.url).rstrip("/")
        headers = {"Accept": "application/vnd.schemaregistry.v1+json, application/json"}
        auth: httpx.BasicAuth | None = None
        token = secret(
            config.bearer_token, config.bearer_token_file, "decode.schema_registry.bearer_token"
        )
        if token:
            headers["Authorization"] = f"Bearer {token}"
        user = secret(config.username, config.username_file, "decode.schema_registry.username")
        password = secret(config.password, config.password_file, "decode.schema_registry.password")
        if user is not None or password is not None:
            auth = httpx.BasicAuth(user or "", password or "")
        verify = tls_context(
            "decode.schema_registry", config.ca_file, config.cert_file, config.key_file
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            auth=auth,
            verify=verify,
            timeout=config.timeout_seconds,
        )
        self._cache: OrderedDict[int, tuple[RegisteredSchema, float]] = OrderedDict()
        self._limit = asyncio.Semaphore(config.max_concurrency)

    async def check(self) -> None:
        """Ask the registry once at start-up (``GET /schemas/types``).

        Refused credentials, an untrusted certificate or a URL that serves no registry API
        raise :class:`ConfigError`; an unreachable registry is only logged, since the
        lookups wait for it anyway.
        """
        where = f"schema registry {self.base_url}"
        try:
            response = await self._http.get("/schemas/types")
        except httpx.HTTPError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                raise ConfigError(
                    f"{where}: its TLS certificate is not trusted ({exc}); set "
                    "decode.schema_registry.ca_file to the CA that signed it"
                ) from exc
            log.warning("schema_registry_unreachable", url=self.base_url, error=str(exc))
            return
        if response.status_code in (401, 403):
            raise ConfigError(
                f"{where} refused the credentials (HTTP {response.status_code}); check "
                "decode.schema_registry.username/password or bearer_token"
            )
        if response.status_code == 404:
            raise ConfigError(
                f"{where} serves no Confluent-compatible API (GET /schemas/types answered "
                "404); check decode.schema_registry.url (Apicurio: .../apis/ccompat/v7)"
            )
        if response.status_code != 200:
            log.warning(
                "schema_registry_unavailable", url=self.base_url, status=response.status_code
            )

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def schemas(self, ids: Iterable[int]) -> dict[int, RegisteredSchema]:
        """Every id's answer (cached or fetched); raises SchemaRegistryUnavailableError."""
        wanted = sorted(set(ids))
        answers = await asyncio.gather(*(self.schema(i) for i in wanted))
        return dict(zip(wanted, answers, strict=True))

    async def schema(self, schema_id: int) -> RegisteredSchema:
        """One id's answer, from the cache when it is still valid."""
        cached = self._cache.get(schema_id)
        if cached is not None and cached[1] > time.monotonic():
            self._cache.move_to_end(schema_id)
            return cached[0]
        async with self._limit:
            answer = await self._fetch(schema_id)
        ttl = float("inf") if answer.definition is not None else self.config.negative_cache_seconds
        self._cache[schema_id] = (answer, time.monotonic() + ttl)
        self._cache.move_to_end(schema_id)
        while len(self._cache) > self.config.cache_size:
            self._cache.popitem(last=False)
        return answer

    async def _fetch(self, schema_id: int) -> RegisteredSchema:
        where = f"schema registry {self.base_url}"
        try:
            response = await self._http.get(f"/schemas/ids/{schema_id}")
        except httpx.HTTPError as exc:
            raise SchemaRegistryUnavailableError(
                f"{where} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code == 404 and _error_code(response) == SCHEMA_NOT_FOUND:
            log.info("schema_id_not_registered", schema_id=schema_id)
            return RegisteredSchema(schema_id, None, "not registered")
        if response.status_code in (401, 403):
            raise SchemaRegistryUnavailableError(
                f"{where} refused the credentials (HTTP {response.status_code}); check "
                "decode.schema_registry.username/password or bearer_token"
            )
        if response.status_code != 200:
            # A 404 without the registry's "schema not found" code is a wrong URL, not an
            # answer about the id: wait for a fix instead of dead-lettering good records.
            raise SchemaRegistryUnavailableError(
                f"{where} answered HTTP {response.status_code} for schema id {schema_id}; "
                "check decode.schema_registry.url"
            )
        return _parse(schema_id, response.content)


def _error_code(response: httpx.Response) -> int | None:
    try:
        code = orjson.loads(response.content).get("error_code")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _parse(schema_id: int, body: bytes) -> RegisteredSchema:
    """The Avro definition in a ``/schemas/ids/{id}`` answer, or why there is none."""
    try:
        answer = orjson.loads(body)
        kind = answer.get("schemaType", "AVRO")
        if kind != "AVRO":
            return RegisteredSchema(schema_id, None, f"a {kind} schema, not Avro")
        definition = orjson.loads(answer["schema"])
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        return RegisteredSchema(schema_id, None, f"unreadable registry answer: {exc}")
    if not isinstance(definition, dict):
        return RegisteredSchema(schema_id, None, "not an Avro record schema")
    return RegisteredSchema(schema_id, definition)
