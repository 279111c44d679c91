"""Records that could not be processed, with the reason, for the dead-letter path."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from detector.models.records import Origin


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that failed at ``stage`` for ``reason``; ``value`` is kept byte-exact.

    ``count`` is the number of bad elements the letter stands for: a record is dead-lettered
    once, however many of the records it wraps are bad.
    """

    stage: str
    reason: str
    detail: str
    origin: Origin
    value: bytes = b""
    count: int = 1

    def as_dict(self, max_value_bytes: int = 4096) -> dict[str, Any]:
        """A JSON-ready view; the value is base64 and truncated to ``max_value_bytes``."""
        return {
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "bad_elements": self.count,
            "origin": self.origin.as_dict(),
            "value_b64": base64.b64encode(self.value[:max_value_bytes]).decode("ascii"),
            "value_truncated": len(self.value) > max_value_bytes,
            "value_size": len(self.value),
        }
