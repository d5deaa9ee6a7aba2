"""Frames that arrived before the FloorTaken naming their burst, held until it comes.

UDP overtakes the WebSocket, so a listener sees a new burst's first frames before floor
control names its talker (:mod:`ptt_client.e2e` opens them then). Pure: time passed in.

The frames are held **per burst**, each burst with its own share (:data:`EARLY_FRAME_LIMIT`),
and at most :data:`EARLY_BURST_LIMIT` bursts at once. One shared list let the frames of one
burst push out another's: a member who just released may still send its burst's
statements for a second (the relay forwards a talker's signed tail), and a flood of them
reaching a listener whose control plane lagged behind evicted every early frame of the
next talker (found by the issue 9 red team). Now a burst's flood only evicts its own frames,
and a new burst evicts the burst held longest, never a newer one's frames: an honest relay
forwards other bursts' frames during a talker's burst only in the one burst that just ended.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

__all__ = ["EARLY_BURST_LIMIT", "EARLY_FRAME_LIMIT", "EARLY_FRAME_TTL", "EarlyFrames"]

EARLY_FRAME_LIMIT: Final = 100
"""Frames kept per burst while waiting for its FloorTaken: two seconds of audio, as long as
one may wait (:data:`EARLY_FRAME_TTL`). One second (50) was the binding limit: a member's
channel texts, within the rate limits, delayed FloorTaken at a 512 kbit/s listener by 2 s
and 43 of the talker's first 150 frames were pushed out before it came."""
EARLY_FRAME_TTL: Final = 2.0
"""Seconds an early frame waits for its FloorTaken before it is dropped unheard."""
EARLY_BURST_LIMIT: Final = 4
"""Bursts whose early frames are held at once (per channel)."""


class EarlyFrames:
    """One channel's early frames: burst id -> (inner frame, arrival time), oldest first."""

    __slots__ = ("_bursts",)

    def __init__(self) -> None:
        self._bursts: OrderedDict[int, deque[tuple[bytes, float]]] = OrderedDict()
        """In the order each burst's first held frame arrived."""

    def __len__(self) -> int:
        """Frames held, all bursts together."""
        return sum(len(frames) for frames in self._bursts.values())

    def __repr__(self) -> str:
        return f"EarlyFrames({ {burst: len(f) for burst, f in self._bursts.items()} })"

    def hold(self, burst_id: int, inner: bytes, now: float) -> None:
        """Keep ``inner`` (a frame of ``burst_id``) until its FloorTaken: within its burst's
        share the oldest frame gives way; a burst over the limit drops the one held longest."""
        frames = self._bursts.get(burst_id)
        if frames is None:
            frames = self._bursts[burst_id] = deque(maxlen=EARLY_FRAME_LIMIT)
            while len(self._bursts) > EARLY_BURST_LIMIT:
                self._bursts.popitem(last=False)
        frames.append((inner, now))

    def take(self, burst_id: int, now: float) -> list[bytes]:
        """FloorTaken named ``burst_id``: its frames still within :data:`EARLY_FRAME_TTL`, in
        arrival order; none of them is held any more."""
        frames = self._bursts.pop(burst_id, ())
        return [inner for inner, at in frames if now - at <= EARLY_FRAME_TTL]

    def keep_only(self, waiting: Callable[[int], bool], now: float) -> None:
        """Drop the frames too old to play and the bursts ``waiting`` says no longer wait
        for a FloorTaken (they ended here)."""
        for burst_id, frames in list(self._bursts.items()):
            while frames and now - frames[0][1] > EARLY_FRAME_TTL:
                frames.popleft()
            if not frames or not waiting(burst_id):
                del self._bursts[burst_id]

    def clear(self) -> None:
        self._bursts.clear()
