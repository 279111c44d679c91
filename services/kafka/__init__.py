"""The local Kafka broker: a single KRaft node from the Maven Central artifacts."""
