"""L4 input adapters: Kafka consumers and files."""
