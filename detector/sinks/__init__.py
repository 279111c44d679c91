"""Alert sinks (L4): Elasticsearch, OpenSearch and JSON-lines files.

The search-engine sinks share one document builder, index template and bulk path
(:mod:`detector.sinks.documents`, :mod:`detector.sinks.bulk`). Import the engine
modules directly (``detector.sinks.elasticsearch``, ``detector.sinks.opensearch``) so
that a process using only one engine does not load the other's client.
"""

from detector.sinks.bulk import BulkResult, BulkSink
from detector.sinks.config import (
    ElasticsearchSinkConfig,
    JsonLinesSinkConfig,
    OpenSearchSinkConfig,
    RetryConfig,
    SinksConfig,
)
from detector.sinks.jsonl import JsonLinesSink

__all__ = [
    "BulkResult",
    "BulkSink",
    "ElasticsearchSinkConfig",
    "JsonLinesSink",
    "JsonLinesSinkConfig",
    "OpenSearchSinkConfig",
    "RetryConfig",
    "SinksConfig",
]
