"""Creation of the runtime's internal topics (matches and state changelog) when missing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from detector.errors import ConfigError

log = structlog.get_logger(__name__)

#: Kafka error codes: TOPIC_ALREADY_EXISTS is fine (another member was faster).
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create if missing; ``replication_factor=None`` means min(3, brokers)."""

    name: str
    partitions: int
    replication_factor: int | None = None
    configs: Mapping[str, str] = field(default_factory=dict)


async def ensure_topics(
    bootstrap_servers: str,
    topics: Sequence[TopicSpec],
    security: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Create the ``topics`` that do not exist; return the partition count of each.

    An existing topic is left as it is (its partition count is reported, not changed).
    Raises :class:`ConfigError` when a topic cannot be created.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if missing:
            brokers = len((await admin.describe_cluster())["brokers"])
            response = await admin.create_topics(
                [
                    NewTopic(
                        t.name,
                        t.partitions,
                        t.replication_factor or max(1, min(3, brokers)),
                        topic_configs=dict(t.configs),
                    )
                    for t in missing
                ]
            )
            problems = [
                f"{name}: error {code} {message or ''}".strip()
                for name, code, message, *_ in response.topic_errors
                if code not in (0, _TOPIC_ALREADY_EXISTS)
            ]
            if problems:
                raise ConfigError("cannot create internal topics: " + "; ".join(problems))
            log.info("internal_topics_created", topics=[t.name for t in missing])
        counts: dict[str, int] = {}
        for meta in await admin.describe_topics([t.name for t in topics]):
            counts[str(meta["topic"])] = len(meta["partitions"])
        return counts
    finally:
        await admin.close()
