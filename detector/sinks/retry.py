"""The one retry policy of the project: bounded exponential backoff with full jitter.

Sleep ``uniform(0, min(max, initial * 2**attempt))`` before retry ``attempt`` (0-based):
the ceiling doubles per attempt and is capped, and the full jitter spreads instances that
failed together so they do not come back in the same instant. The search sinks, the
notification sinks and the runner's durable-write loop all sleep by this formula.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """Seconds to sleep before retry ``attempt`` (0-based): full jitter below the ceiling."""
    ceiling = min(maximum, initial * (2 ** min(attempt, 62)))
    return random.uniform(0, ceiling)  # jitter, not cryptography


class RetryConfig(BaseModel):
    """Bounded exponential backoff with full jitter for transient failures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Attempts after the first one before :class:`detector.errors.SinkError` is raised.
    max_retries: int = Field(default=5, ge=0, le=50)
    #: Upper bound of the first sleep, seconds; doubles per attempt.
    backoff_initial: float = Field(default=0.5, gt=0)
    #: Cap of any single sleep, seconds.
    backoff_max: float = Field(default=30.0, gt=0)

    def delay(self, attempt: int) -> float:
        """Seconds to sleep before retry ``attempt`` (0-based), by :func:`backoff_delay`."""
        return backoff_delay(attempt, self.backoff_initial, self.backoff_max)


__all__ = ["RetryConfig", "backoff_delay"]
