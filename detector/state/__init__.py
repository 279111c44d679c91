"""State layer (L4): correlation state persisted in a compacted Kafka changelog topic.

:class:`KafkaChangelogStore` implements the :class:`~detector.models.StateStore` port;
:class:`Checkpoint` frames a partition's snapshots with the input offset they reflect;
:func:`ensure_topics` creates the runtime's internal topics.
"""

from detector.state.changelog import KafkaChangelogStore
from detector.state.checkpoint import Checkpoint
from detector.state.topics import TopicSpec, ensure_topics

__all__ = ["Checkpoint", "KafkaChangelogStore", "TopicSpec", "ensure_topics"]
