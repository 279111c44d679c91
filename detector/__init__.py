"""detector: streaming Sigma detection for CI/CD pipelines and container registries."""

__version__ = "0.1.0"
