"""The one bulk write path of the search-engine sinks: send, classify, back off, retry.

Subclasses adapt a client library (``elasticsearch`` or ``opensearch-py``) by implementing
four small primitives; everything that decides whether an alert is durable lives here and
in :mod:`detector.sinks.documents`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from detector.errors import AlertRejectedError, SinkError
from detector.models import Alert
from detector.sinks.config import SearchSinkConfig
from detector.sinks.documents import (
    bulk_operations,
    first_index,
    first_index_body,
    index_template,
    interpret_bulk_response,
)

log = structlog.get_logger(__name__)


class TransientError(Exception):
    """A request failed in a way a later attempt may not (timeout, refused, 429, 5xx)."""


@dataclass(slots=True)
class BulkResult:
    """The fate of every alert of one :meth:`BulkSink.write_batch` call."""

    created: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: alert id -> reason; permanently refused by the engine (dead-letter them).
    rejected: dict[str, str] = field(default_factory=dict)
    #: Attempts made (1 = no retry).
    attempts: int = 0


class BulkSink(ABC):
    """Base of the Elasticsearch and OpenSearch sinks (implements :class:`detector.models.Sink`)."""

    def __init__(self, config: SearchSinkConfig) -> None:
        self.index = config.index
        self._retry = config.retry
        self._shards = config.shards
        self._replicas = config.replicas
        self._setup = config.setup
        self._closed = False

    # -- engine primitives ---------------------------------------------------------------

    @abstractmethod
    async def _send_bulk(self, operations: list[dict[str, Any]]) -> Mapping[str, Any]:
        """POST ``_bulk``: the response body, or :class:`TransientError` / ``SinkError``."""

    @abstractmethod
    async def _put_template(self, name: str, body: dict[str, Any]) -> None:
        """``PUT _index_template/<name>`` (create or replace)."""

    @abstractmethod
    async def _exists(self, name: str) -> bool:
        """Whether an index or alias called ``name`` exists."""

    @abstractmethod
    async def _create_index(self, name: str, body: dict[str, Any]) -> None:
        """``PUT <name>``; an "already exists" answer is not an error."""

    @abstractmethod
    async def _close_client(self) -> None:
        """Release the client's connections."""

    # -- public API -----------------------------------------------------------------------

    async def ensure_setup(self) -> None:
        """Install the index template and create the write alias if missing (idempotent).

        With ``setup: false`` in the sink's config this does nothing: the template and the
        alias are managed elsewhere and the writer needs no manage-template privilege.
        """
        if not self._setup:
            log.info("sink_setup_skipped", index=self.index)
            return
        await self._put_template(
            self.index, index_template(self.index, shards=self._shards, replicas=self._replicas)
        )
        if not await self._exists(self.index):
            await self._create_index(first_index(self.index), first_index_body(self.index))
        log.info("sink_setup_done", index=self.index)

    async def write(self, alerts: Sequence[Alert]) -> None:
        """Store ``alerts`` (the :class:`detector.models.Sink` contract).

        Raises :class:`detector.errors.SinkError` when alerts could not be made durable
        within the retry bound (backpressure: do not commit), and
        :class:`detector.errors.AlertRejectedError` when every other alert is stored but
        some were refused for good (dead-letter those, then commit).
        """
        result = await self.write_batch(alerts)
        if result.rejected:
            raise AlertRejectedError(result.rejected)

    async def write_batch(self, alerts: Sequence[Alert]) -> BulkResult:
        """Store ``alerts`` and say what happened to each; raises ``SinkError`` as :meth:`write`."""
        if self._closed:
            raise SinkError("sink is closed")
        result = BulkResult()
        pending = {a.id: a for a in alerts}  # also drops in-batch duplicate ids
        attempt = 0
        while pending:
            result.attempts = attempt + 1
            ids = list(pending)
            try:
                response = await self._send_bulk(
                    bulk_operations(list(pending.values()), self.index)
                )
            except TransientError as exc:
                retry_reason = {i: str(exc) for i in ids}
            else:
                outcome = interpret_bulk_response(response, ids)
                result.created += outcome.created
                result.duplicates += outcome.duplicates
                result.rejected.update(outcome.rejected)
                retry_reason = outcome.retry
            pending = {i: pending[i] for i in retry_reason}
            if not pending:
                break
            if attempt >= self._retry.max_retries:
                sample = next(iter(retry_reason.values()))
                raise SinkError(
                    f"{len(pending)} alert(s) not stored in {self.index} after "
                    f"{attempt + 1} attempts: {sample}"
                )
            delay = self._retry.delay(attempt)
            log.warning(
                "sink_bulk_retry",
                index=self.index,
                pending=len(pending),
                attempt=attempt + 1,
                delay_s=round(delay, 3),
                reason=next(iter(retry_reason.values())),
            )
            await asyncio.sleep(delay)
            attempt += 1
        log.info(
            "sink_bulk_done",
            index=self.index,
            created=len(result.created),
            duplicates=len(result.duplicates),
            rejected=len(result.rejected),
            attempts=result.attempts,
        )
        return result

    async def close(self) -> None:
        """Release connections; idempotent."""
        if not self._closed:
            self._closed = True
            await self._close_client()
