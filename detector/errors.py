"""The error tree of detector.

Every error raised on purpose derives from :class:`DetectorError`. Per-record errors
(:class:`RecordError` and subclasses) carry the pipeline stage and a reason and end up
in the dead-letter path; start-up errors (:class:`ConfigError`, :class:`RuleLoadError`)
are collected and reported together; anything else is a bug and crashes the process
so that Kafka redelivers.
"""

from __future__ import annotations


class DetectorError(Exception):
    """Base class of every error detector raises on purpose."""


class ConfigError(DetectorError):
    """Invalid configuration; the message says which setting and how to fix it."""


class RecordError(DetectorError):
    """A single input record could not be processed; it goes to the dead-letter path.

    ``stage`` names the pipeline stage (``decode``, ``normalize``, ``detect``, ...)
    and ``reason`` is a short machine-readable code such as ``invalid_json``.
    """

    stage = "record"

    def __init__(self, reason: str, detail: str = "", count: int = 1) -> None:
        self.reason = reason
        self.detail = detail
        #: Bad elements this error stands for (records of one envelope, say).
        self.count = count
        super().__init__(f"{reason}: {detail}" if detail else reason)


class DecodeError(RecordError):
    """Bytes could not be turned into a record (bad JSON/Avro, size, nesting, encoding)."""

    stage = "decode"


class NormalizeError(RecordError):
    """A decoded record does not have the shape its source requires."""

    stage = "normalize"


class RuleError(DetectorError):
    """A rule cannot be loaded or evaluated by the engine."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}")


class MissingPlaceholderError(RuleError):
    """A rule uses a placeholder (``%name%``) that the configuration gives no value."""


class RuleLoadError(DetectorError):
    """One or more rules were rejected at load time; ``errors`` holds every one of them."""

    def __init__(self, errors: list[RuleError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"{len(errors)} rule error(s):\n{lines}")


class UnavailableError(DetectorError):
    """A service a batch needs is unavailable: the batch waits and is retried with backoff
    while the partitions are paused (backpressure); offsets are not committed."""


class SinkError(UnavailableError):
    """A sink could not make alerts durable; the batch is retried, offsets are not committed."""


class SchemaRegistryUnavailableError(UnavailableError):
    """The schema registry cannot answer now; the batch waits instead of dead-lettering."""


class DeliveryAbandonedError(DetectorError):
    """A stop was requested while a batch waited for an unavailable output.

    The batch is left uncommitted (and, in the correlate stage, out of the checkpoint), so
    the next owner of its partitions reads it again; alert ids are deterministic, so
    nothing is lost and nothing is stored twice. ``output`` names what was unavailable.
    """

    def __init__(self, output: str) -> None:
        self.output = output
        super().__init__(f"stopped while {output} was unavailable; the batch will be re-read")


class SourceError(DetectorError):
    """A source (Kafka, files) failed in a way the runner cannot recover from by retrying."""


class AlertRejectedError(DetectorError):
    """A sink stored every alert it could but refused some for good (e.g. a mapping error).

    Not a :class:`SinkError`: retrying cannot help, so the runner dead-letters the
    alerts named in ``rejected`` (alert id -> reason) and commits the batch.
    """

    def __init__(self, rejected: dict[str, str]) -> None:
        self.rejected = dict(rejected)
        first = next(iter(self.rejected.items()), ("", ""))
        super().__init__(f"{len(self.rejected)} alert(s) rejected, e.g. {first[0]}: {first[1]}")
