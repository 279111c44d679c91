"""Real local services (Kafka, OpenSearch) for development and tests, without Docker.

Run through ``scripts/services``. This package is repository tooling: it is not part of the
installed ``detector`` package, and it uses the standard library only.
"""
