"""Token buckets: the rate limits on what one session may send. Pure: time is passed in."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """A rate limit: ``rate`` tokens per second, bursts up to ``capacity``. Time is passed in."""

    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._last = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        # The epsilon: a take at exactly ready_at() must succeed despite float rounding.
        if self._tokens >= cost - 1e-9:
            self._tokens = max(0.0, self._tokens - cost)
            return True
        return False

    def ready_at(self, cost: float = 1.0) -> float:
        """The time from which :meth:`take` of ``cost`` succeeds (in the past if it would now)."""
        return self._last + max(0.0, cost - self._tokens) / self.rate
