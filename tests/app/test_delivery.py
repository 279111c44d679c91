"""Delivery under an outage: backpressure while running, a prompt and lossless stop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from detector.app.health import HealthState
from detector.app.runner import Delivery
from detector.errors import DeliveryAbandonedError, SinkError
from detector.models import Alert, RuleInfo

#: These batches carry no dead letters, so delivery never touches a dead-letter sink.
NO_DEAD_LETTER_SINK = None

ALERT = Alert(
    id="b" * 32,
    timestamp=datetime(2026, 11, 28, 10, 0, tzinfo=UTC),
    rule=RuleInfo(id="r1", title="Registry repository made public", level="high"),
    reason="repository made public",
    events=({"event": {"id": "e1"}},),
)


class _Consumer:
    """The backpressure port: records pauses, resumes and the idle polls asked for."""

    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0
        self.polls: list[int] = []
        self.on_poll: list[Callable[[], None]] = []

    def pause(self) -> None:
        self.pauses += 1

    def resume(self) -> None:
        self.resumes += 1

    async def idle_poll(self, timeout_ms: int) -> None:
        self.polls.append(timeout_ms)
        for hook in self.on_poll:
            hook()


class _DownSink:
    """A durable sink that is unavailable for its first ``failures`` writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts = 0
        self.stored: list[Alert] = []

    async def write(self, alerts: list[Alert]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise SinkError("search engine answered 503")
        self.stored.extend(alerts)

    async def close(self) -> None:
        pass


async def test_outage_pauses_retries_and_resumes_once_the_sink_is_back() -> None:
    """Three failed writes: the consumer is paused once, polled between attempts (keeping
    its group membership), resumed once, and the alert is stored on the fourth attempt."""
    consumer, sink = _Consumer(), _DownSink(failures=3)
    delivery = Delivery(
        consumer, [sink], NO_DEAD_LETTER_SINK, HealthState(), max_backoff_seconds=0.01
    )
    await delivery.deliver([ALERT], [])
    assert (consumer.pauses, consumer.resumes, sink.attempts) == (1, 1, 4)
    assert sink.stored == [ALERT]
    assert consumer.polls


async def test_stop_during_an_outage_abandons_the_batch_after_the_current_wait() -> None:
    """A stop requested while the sink is down ends the wait within one poll slice of at
    most a second, and the batch is abandoned (the caller leaves it uncommitted), not
    retried until the sink returns and not reported as delivered."""
    stopping = False
    consumer, sink = _Consumer(), _DownSink(failures=1_000)

    def request_stop() -> None:
        nonlocal stopping
        stopping = True

    consumer.on_poll.append(request_stop)
    delivery = Delivery(
        consumer,
        [sink],
        NO_DEAD_LETTER_SINK,
        HealthState(),
        max_backoff_seconds=30.0,
        stopping=lambda: stopping,
    )
    with pytest.raises(DeliveryAbandonedError) as caught:
        await delivery.deliver([ALERT], [])
    assert caught.value.output == "_DownSink"
    assert all(ms <= 1000 for ms in consumer.polls)
    assert len(consumer.polls) == 1  # the stop was seen at the end of the first slice
    assert sink.attempts == 2  # one more try after the stop, then give up
    assert sink.stored == []


async def test_a_stop_does_not_abandon_a_write_that_succeeds() -> None:
    """With a stop already requested, a sink that answers still gets the batch: a drained
    stop finishes the batch in hand."""
    consumer, sink = _Consumer(), _DownSink(failures=0)
    delivery = Delivery(consumer, [sink], NO_DEAD_LETTER_SINK, HealthState(), stopping=lambda: True)
    await delivery.deliver([ALERT], [])
    assert sink.stored == [ALERT] and consumer.pauses == 0
