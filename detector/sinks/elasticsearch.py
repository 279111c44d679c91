"""Alerts to Elasticsearch through the official async client.

Client and server majors: the ``elasticsearch`` client of major N sends
``Accept``/``Content-Type: application/vnd.elasticsearch+json; compatible-with=N`` on
every request. An Elasticsearch server accepts ``compatible-with`` equal to its own major
or the one before it, so:

* Elasticsearch 9.x server -> client 9.x (or 8.x);
* Elasticsearch 8.x server -> client 8.x (``pip install 'elasticsearch>=8.13,<9'``); a 9.x
  client gets ``400 media_type_header_exception`` from it, which this sink turns into an
  error message naming this rule.

The project's range ``elasticsearch>=8.13,<10`` admits both, and this module only uses
APIs whose signatures are the same in both majors (``bulk(operations=...)``,
``indices.put_index_template``, ``indices.exists``, ``indices.create``). Both majors also
refuse to talk to a server whose responses lack ``X-Elastic-Product: Elasticsearch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, AsyncElasticsearch

from detector.errors import ConfigError, SinkError
from detector.sinks.bulk import BulkSink, TransientError
from detector.sinks.config import ElasticsearchSinkConfig
from detector.sinks.documents import transient_status

_COMPAT_HINT = (
    "the server refused the client's compatible-with media type: an Elasticsearch 8.x "
    "server needs the 8.x client (pip install 'elasticsearch>=8.13,<9')"
)


def _api_message(exc: ApiError) -> str:
    text = f"{exc.meta.status} {exc.message}"
    if exc.meta.status in (400, 406) and (
        "media_type" in str(exc.body) or "compatible" in str(exc.body)
    ):
        return f"{text}: {_COMPAT_HINT}"
    return text


class ElasticsearchSink(BulkSink):
    """Writes alerts with ``op_type=create`` and ``_id`` = alert id to an Elasticsearch alias.

    Implements :class:`detector.models.Sink`; call :meth:`ensure_setup` once at start.
    The client's own retries are off: :class:`detector.sinks.bulk.BulkSink` retries the
    items that need it, with backoff, and only those.
    """

    def __init__(
        self, config: ElasticsearchSinkConfig, client: AsyncElasticsearch | None = None
    ) -> None:
        super().__init__(config)
        self.config = config
        self.client = client if client is not None else self._make_client(config)

    @staticmethod
    def _make_client(config: ElasticsearchSinkConfig) -> AsyncElasticsearch:
        options: dict[str, Any] = {
            "verify_certs": config.verify_certs,
            "request_timeout": config.request_timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
            "retry_on_status": (),
        }
        if config.ca_certs is not None:
            options["ca_certs"] = str(config.ca_certs)
        if config.api_key is not None:
            options["api_key"] = config.api_key.get_secret_value()
        elif config.basic_auth is not None:
            options["basic_auth"] = config.basic_auth
        return AsyncElasticsearch(hosts=list(config.hosts), **options)

    async def _send_bulk(self, operations: list[dict[str, Any]]) -> Mapping[str, Any]:
        try:
            response = await self.client.bulk(operations=operations)
        except ApiError as exc:
            if transient_status(exc.meta.status):
                raise TransientError(_api_message(exc)) from exc
            raise SinkError(f"bulk to {self.index} failed: {_api_message(exc)}") from exc
        except TransportError as exc:  # refused, reset, timeout, TLS
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        body: Mapping[str, Any] = response.body
        return body

    async def _put_template(self, name: str, body: dict[str, Any]) -> None:
        await self._setup_call(
            self.client.indices.put_index_template(
                name=name,
                index_patterns=body["index_patterns"],
                priority=body["priority"],
                template=body["template"],
                meta=body["_meta"],
            )
        )

    async def _exists(self, name: str) -> bool:
        response = await self._setup_call(self.client.indices.exists(index=name))
        return bool(response)

    async def _create_index(self, name: str, body: dict[str, Any]) -> None:
        try:
            await self.client.indices.create(index=name, aliases=body["aliases"])
        except ApiError as exc:
            if exc.meta.status == 400 and "resource_already_exists" in str(exc.body):
                return  # another instance created it first
            raise _setup_error(exc) from exc
        except TransportError as exc:
            raise SinkError(f"cannot reach Elasticsearch: {exc}") from exc

    async def _setup_call(self, call: Any) -> Any:
        try:
            return await call
        except ApiError as exc:
            raise _setup_error(exc) from exc
        except TransportError as exc:
            raise SinkError(f"cannot reach Elasticsearch: {exc}") from exc

    async def _close_client(self) -> None:
        await self.client.close()


def _setup_error(exc: ApiError) -> Exception:
    """Start-up failures: bad credentials or a refused body are configuration errors."""
    if exc.meta.status in (400, 401, 403, 406):
        return ConfigError(f"Elasticsearch alert index setup failed: {_api_message(exc)}")
    return SinkError(f"Elasticsearch alert index setup failed: {_api_message(exc)}")
