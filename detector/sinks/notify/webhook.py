"""JSON POSTs to a notification endpoint with timeouts, bounded retries and jittered backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import structlog

from detector.errors import SinkError
from detector.sinks.notify.config import NotifyRetryConfig
from detector.sinks.notify.text import clean, redact, truncate
from detector.sinks.retry import backoff_delay

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class DeliveryRejectedError(Exception):
    """The endpoint refused the message for good (4xx other than 408/429): do not retry."""


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _transient(status: int) -> bool:
    return status in (408, 429) or status >= 500


class WebhookClient:
    """POSTs JSON to one URL; 2xx is success, 408/429/5xx and transport errors are retried.

    After ``retry.max_retries`` retries, or when ``Retry-After`` asks for more than
    ``retry.max_retry_after`` seconds, :class:`detector.errors.SinkError` is raised.
    Other statuses raise :class:`DeliveryRejectedError`. Redirects are not followed (they
    would leave the allowlisted host). Error messages never contain the URL.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        timeout: float,
        retry: NotifyRetryConfig,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._url = url
        self._name = name
        self._retry = retry
        self._sleep = sleep
        self._timeout = httpx.Timeout(timeout)
        self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)

    async def post(self, payload: Mapping[str, Any]) -> httpx.Response:
        """Deliver ``payload``; the 2xx response, or ``SinkError`` / ``DeliveryRejectedError``."""
        body = orjson.dumps(payload)
        attempt = 0
        while True:
            wait: float | None = None
            try:
                response = await self._client.post(
                    self._url,
                    content=body,
                    headers={"Content-Type": "application/json"},
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {self._scrub(str(exc))}".rstrip(": ")
            else:
                if response.is_success:
                    return response
                detail = self._scrub(response.text)
                reason = f"HTTP {response.status_code} {detail}".strip()
                if not _transient(response.status_code):
                    raise DeliveryRejectedError(f"{self._name} refused the message: {reason}")
                wait = retry_after_seconds(response.headers.get("Retry-After"))
            if attempt >= self._retry.max_retries:
                raise SinkError(
                    f"{self._name}: not delivered after {attempt + 1} attempts: {reason}"
                )
            if wait is not None and wait > self._retry.max_retry_after:
                raise SinkError(f"{self._name}: rate limited for {wait:.0f}s: {reason}")
            delay = self._delay(attempt, wait)
            log.warning(
                "sink_notify_retry",
                sink=self._name,
                attempt=attempt + 1,
                delay_s=round(delay, 3),
                reason=reason,
            )
            await self._sleep(delay)
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter below the doubling ceiling; with ``Retry-After``, that long plus a
        little jitter so that several instances do not come back in the same instant.
        """
        if retry_after is not None:
            cap = min(self._retry.backoff_max, 1.0)
            return retry_after + backoff_delay(attempt, self._retry.backoff_initial, cap)
        return self._retry.delay(attempt)

    def _scrub(self, text: str) -> str:
        """Endpoint output or an exception text, short, without the URL or any credential."""
        return truncate(clean(redact(text.replace(self._url, "<endpoint>"), 400)), 200)

    async def aclose(self) -> None:
        """Release the connection pool; idempotent."""
        await self._client.aclose()


__all__ = ["DeliveryRejectedError", "WebhookClient", "retry_after_seconds"]
