"""Alerts to OpenSearch (2.x and 3.x) through opensearch-py's async client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import TransportError

from detector.errors import ConfigError, SinkError
from detector.sinks.bulk import BulkSink, TransientError
from detector.sinks.config import OpenSearchSinkConfig
from detector.sinks.documents import transient_status


def _status(exc: TransportError) -> int | None:
    """The HTTP status of a failed request; ``None`` for connection-level failures."""
    status = exc.status_code
    return status if isinstance(status, int) else None


class OpenSearchSink(BulkSink):
    """Writes alerts with ``op_type=create`` and ``_id`` = alert id to an OpenSearch alias.

    Same documents, template and bulk semantics as
    :class:`detector.sinks.elasticsearch.ElasticsearchSink` (they share
    :class:`detector.sinks.bulk.BulkSink`); only the client differs. Implements
    :class:`detector.models.Sink`; call :meth:`ensure_setup` once at start.
    """

    def __init__(self, config: OpenSearchSinkConfig, client: AsyncOpenSearch | None = None) -> None:
        super().__init__(config)
        self.config = config
        self.client = client if client is not None else self._make_client(config)

    @staticmethod
    def _make_client(config: OpenSearchSinkConfig) -> AsyncOpenSearch:
        options: dict[str, Any] = {
            "verify_certs": config.verify_certs,
            "timeout": config.request_timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
            "retry_on_status": (),
        }
        if config.ca_certs is not None:
            options["ca_certs"] = str(config.ca_certs)
        if config.basic_auth is not None:
            options["http_auth"] = config.basic_auth
        return AsyncOpenSearch(hosts=list(config.hosts), **options)

    async def _send_bulk(self, operations: list[dict[str, Any]]) -> Mapping[str, Any]:
        try:
            response: Mapping[str, Any] = await self.client.bulk(body=operations)
        except TransportError as exc:
            status = _status(exc)
            if status is None or transient_status(status):
                raise TransientError(f"{type(exc).__name__}: {exc}") from exc
            raise SinkError(f"bulk to {self.index} failed: {exc}") from exc
        return response

    async def _put_template(self, name: str, body: dict[str, Any]) -> None:
        await self._setup_call(self.client.indices.put_index_template(name=name, body=body))

    async def _exists(self, name: str) -> bool:
        return bool(await self._setup_call(self.client.indices.exists(index=name)))

    async def _create_index(self, name: str, body: dict[str, Any]) -> None:
        try:
            await self.client.indices.create(index=name, body=body)
        except TransportError as exc:
            if _status(exc) == 400 and "resource_already_exists" in str(exc):
                return  # another instance created it first
            raise _setup_error(exc) from exc

    async def _setup_call(self, call: Any) -> Any:
        try:
            return await call
        except TransportError as exc:
            raise _setup_error(exc) from exc

    async def _close_client(self) -> None:
        await self.client.close()


def _setup_error(exc: TransportError) -> Exception:
    """Start-up failures: bad credentials or a refused body are configuration errors."""
    if _status(exc) in (400, 401, 403):
        return ConfigError(f"OpenSearch alert index setup failed: {exc}")
    return SinkError(f"OpenSearch alert index setup failed: {exc}")
