"""Dead-letter sink: poison records go to a Kafka topic, byte-exact, with the reason in headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer

from detector.errors import SinkError
from detector.models import DeadLetter

log = structlog.get_logger(__name__)


def deadletter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Kafka headers saying where the record failed and where it came from."""
    headers = [
        ("detector.stage", letter.stage.encode()),
        ("detector.reason", letter.reason.encode()),
        ("detector.detail", letter.detail[:1000].encode("utf-8", "replace")),
        ("detector.bad_elements", str(letter.count).encode()),
    ]
    for key, value in letter.origin.as_dict().items():
        headers.append((f"detector.origin.{key}", str(value).encode()))
    return headers


class KafkaDeadLetterSink:
    """Produces each dead letter to ``topic``; ``write`` returns once Kafka acknowledged all."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str = "detector-deadletter",
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            **(security or {}),
        )
        self._started = False

    async def start(self) -> None:
        """Connect the producer."""
        await self._producer.start()
        self._started = True

    async def write(self, letters: Sequence[DeadLetter]) -> None:
        """Send every letter and wait for the acknowledgements."""
        if not letters:
            return
        try:
            futures = [
                await self._producer.send(
                    self.topic, value=letter.value, headers=deadletter_headers(letter)
                )
                for letter in letters
            ]
            for future in futures:
                await future
        except Exception as exc:
            raise SinkError(f"dead-letter topic {self.topic!r} unavailable: {exc}") from exc
        log.info("deadletters_written", count=len(letters), topic=self.topic)

    async def close(self) -> None:
        """Flush and disconnect; idempotent."""
        if self._started:
            self._started = False
            await self._producer.stop()
