"""Records that could not be processed, with the reason, for the dead-letter path."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from detector.models.records import Origin


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that failed at ``stage`` for ``reason``; ``value`` is kept byte-exact."""

    stage: str
    reason: str
    detail: str
    origin: Origin
    value: bytes = b""

    def as_dict(self, max_value_bytes: int = 4096) -> dict[str, Any]:
        """A JSON-ready view; the value is base64 and truncated to ``max_value_bytes``."""
        return {
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
            "origin": self.origin.as_dict(),
            "value_b64": base64.b64encode(self.value[:max_value_bytes]).decode("ascii"),
            "value_truncated": len(self.value) > max_value_bytes,
            "value_size": len(self.value),
        }
