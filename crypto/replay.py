"""The one anti-replay window: the hop layer's per-session counters and SFrame's per-burst
counters both pass through it (RFC 6479)."""

from __future__ import annotations

__all__ = ["ReplayWindow"]


class ReplayWindow:
    """Sliding anti-replay window over 64-bit counters (RFC 6479, 8-bit blocks).

    A ring of ``size // 8 + 1`` byte-sized blocks: when the newest
    counter advances, only the blocks it passes are cleared, so in-order
    traffic costs a few small-int operations and no allocation. The extra
    block guarantees the whole window of ``size`` counters behind the newest
    is tracked. :meth:`check` never changes state (use it before
    authentication); :meth:`mark` records an authenticated counter.
    """

    __slots__ = ("_blocks", "_ring", "_top", "size")

    def __init__(self, size: int) -> None:
        if size <= 0 or size % 8:
            raise ValueError(f"replay window {size} must be a positive multiple of 8")
        self.size = size
        self._blocks = size // 8 + 1
        self._ring = bytearray(self._blocks)
        self._top = -1

    @property
    def newest(self) -> int:
        """Highest counter marked so far (-1 before the first)."""
        return self._top

    def check(self, counter: int) -> bool:
        """True if ``counter`` is new and inside the window; changes nothing."""
        top = self._top
        if counter > top:
            return True
        if top - counter >= self.size:
            return False
        return not (self._ring[(counter >> 3) % self._blocks] >> (counter & 7)) & 1

    def mark(self, counter: int) -> None:
        """Record ``counter`` as seen; the caller has already :meth:`check`-ed it."""
        ring = self._ring
        blocks = self._blocks
        top = self._top
        if counter > top:
            # RFC 6479 section 2: clear the blocks between the old and new top.
            current = top >> 3
            passed = min((counter >> 3) - current, blocks)
            for step in range(1, passed + 1):
                ring[(current + step) % blocks] = 0
            self._top = counter
        ring[(counter >> 3) % blocks] |= 1 << (counter & 7)
