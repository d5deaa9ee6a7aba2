"""Packet loss on the server-to-radio hop, measured from the hop layer's counters.

The relay seals every datagram to a radio with that session's next counter, so
gaps in the counters this radio received are exactly the datagrams the network
lost on the way down (keepalive answers included). The radio feeds the figure
to its Opus encoder as the expected-loss hint and shows it as link quality.
"""

from __future__ import annotations

from collections import deque


class LossMeter:
    """Loss over the last ``window`` counters received; pure, fed one counter at a time."""

    def __init__(self, window: int = 500) -> None:
        self._counters: deque[int] = deque(maxlen=window)
        self._seen: set[int] = set()

    def record(self, counter: int) -> None:
        if counter in self._seen:
            return
        if len(self._counters) == self._counters.maxlen:
            self._seen.discard(self._counters[0])
        self._counters.append(counter)
        self._seen.add(counter)

    @property
    def loss_pct(self) -> float:
        """Percent of the counters in the window's range that never arrived (0 when unknown)."""
        if len(self._seen) < 2:
            return 0.0
        span = max(self._seen) - min(self._seen) + 1
        return 100.0 * (span - len(self._seen)) / span
