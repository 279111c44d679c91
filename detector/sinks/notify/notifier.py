"""The write loop shared by the notification sinks: dedup, routing, suppression, delivery."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

import structlog

from detector.errors import AlertRejectedError, SinkError
from detector.models import Alert
from detector.sinks.notify.config import NotifyConfig
from detector.sinks.notify.routing import Clock, RecentIds, Route, Suppressor, suppression_key
from detector.sinks.notify.webhook import DeliveryRejectedError, Sleep, WebhookClient

log = structlog.get_logger(__name__)


class NotificationSink(ABC):
    """Base of :class:`SlackSink` and :class:`PagerDutySink` (implements the ``Sink`` port).

    For every alert of a batch, in order: skip it if its id was handled recently (a
    retried batch) or its suppression group was (:attr:`Alert.document_id`: a group is
    told once), if the route refuses it (severity, tags), or if its rule and key are
    inside a suppression window (then it is counted); otherwise deliver it. A delivery
    that fails after the retry bound raises :class:`detector.errors.SinkError` at once
    (the runner retries the batch later; alerts already delivered are skipped then). A
    message the endpoint refuses for good is reported at the end of the batch as
    :class:`detector.errors.AlertRejectedError`, after every other alert was handled.
    """

    #: Sink name in logs and error messages.
    name: ClassVar[str]

    def __init__(
        self,
        config: NotifyConfig,
        url: str,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.config = config
        self.route = Route(
            config.min_severity, tuple(config.include_tags), tuple(config.exclude_tags)
        )
        self.suppressor = Suppressor(
            config.suppression_window_seconds, max_keys=config.dedup_cache_size, clock=clock
        )
        self._clock = clock
        self._seen = RecentIds(config.dedup_cache_size)
        self._http = WebhookClient(
            url, name=self.name, timeout=config.request_timeout, retry=config.retry, sleep=sleep
        )
        self._lock = asyncio.Lock()
        self._closed = False

    async def write(self, alerts: Sequence[Alert]) -> None:
        """Notify about ``alerts`` (the :class:`detector.models.Sink` contract)."""
        if self._closed:
            raise SinkError(f"{self.name} sink is closed")
        async with self._lock:
            outcomes: Counter[str] = Counter()
            rejected: dict[str, str] = {}
            try:
                await self._before_batch(alerts)
                for alert in alerts:
                    outcomes[await self._handle(alert, rejected)] += 1
            finally:
                log.info("sink_notify_batch", sink=self.name, alerts=len(alerts), **outcomes)
            if rejected:
                raise AlertRejectedError(rejected)

    async def _handle(self, alert: Alert, rejected: dict[str, str]) -> str:
        """Route, suppress or deliver one alert; the name of what happened."""
        # A suppressed group is told once: its alerts share the document id.
        seen_id = alert.document_id
        if seen_id in self._seen:
            return "repeated" if seen_id == alert.id else "grouped"
        if not self.route.accepts(alert):
            return "filtered"
        key = suppression_key(alert, self.config.suppress_by)
        mentioned = self.suppressor.admit(key)
        if mentioned is None:
            self.suppressor.count(key)
            self._seen.add(seen_id)
            return "suppressed"
        if not self._may_send():
            self._seen.add(seen_id)
            return "capped"
        try:
            await self._send(alert, mentioned)
        except DeliveryRejectedError as exc:
            self._unsent()
            rejected[alert.id] = str(exc)
            log.error("sink_notify_rejected", sink=self.name, alert_id=alert.id, reason=str(exc))
            return "rejected"
        except BaseException:
            self._unsent()
            raise
        self.suppressor.opened(key, alert.rule.title, mentioned)
        self._seen.add(seen_id)
        return "sent"

    async def _before_batch(self, alerts: Sequence[Alert]) -> None:
        """Hook run before a batch (e.g. to send pending summaries)."""
        return None

    def _may_send(self) -> bool:
        """Whether a rate cap leaves room for one more message."""
        return True

    def _unsent(self) -> None:
        """Undo :meth:`_may_send` for a message that was not delivered."""
        return None

    @abstractmethod
    async def _send(self, alert: Alert, mentioned: int) -> None:
        """Deliver one alert; ``mentioned`` alerts were suppressed since the last one."""

    async def close(self) -> None:
        """Release connections; idempotent. Pending summaries are not sent."""
        if not self._closed:
            self._closed = True
            await self._http.aclose()


__all__ = ["NotificationSink"]
