"""The one retry policy: full jitter below a doubling, capped ceiling."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from detector.sinks.notify import NotifyRetryConfig
from detector.sinks.retry import RetryConfig, backoff_delay


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    initial=st.floats(min_value=0.001, max_value=10),
    maximum=st.floats(min_value=0.001, max_value=600),
)
def test_delay_stays_below_the_capped_doubling_ceiling(
    attempt: int, initial: float, maximum: float
) -> None:
    """Every delay lies in [0, min(max, initial * 2**attempt)], even for huge attempts."""
    delay = backoff_delay(attempt, initial, maximum)
    assert 0 <= delay <= min(maximum, initial * 2 ** min(attempt, 62))


def test_delays_are_jittered_and_reach_the_cap() -> None:
    """Many draws at a capped attempt spread over the whole range up to the cap."""
    policy = RetryConfig(backoff_initial=1.0, backoff_max=4.0)
    draws = [policy.delay(10) for _ in range(2000)]
    assert max(draws) <= 4.0
    assert min(draws) < 1.0
    assert max(draws) > 3.0


def test_notification_policy_is_the_same_policy() -> None:
    """The notification sinks' retry settings are the one policy plus ``max_retry_after``."""
    policy = NotifyRetryConfig(backoff_initial=0.5, backoff_max=2.0)
    assert isinstance(policy, RetryConfig)
    assert policy.max_retries == 4
    assert all(0 <= policy.delay(a) <= 2.0 for a in range(20))
