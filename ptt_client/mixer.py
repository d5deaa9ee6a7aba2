"""Which talker is heard: one jitter buffer per talker, the picked one played, the others muted.

TS 22.179 priorities decide (emergency > imminent peril > dispatcher > officer); on a tie,
the talker who began first. Pure: times are passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ptt_client.jitter import JitterBuffer, Output

__all__ = ["Candidate", "PriorityPicker", "StreamMixer"]


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Candidate(Generic[K]):
    """A talker stream that wants to be heard."""

    key: K
    priority: int
    started_at: float


class PriorityPicker(Generic[K]):
    """Picks the one stream to play: the highest priority; on a tie, the one that began first.

    TS 22.179 priorities (emergency > imminent peril > dispatcher > officer) map to larger
    integers. A tie on both keeps the earlier-registered candidate, so the choice is stable.
    """

    @staticmethod
    def pick(candidates: Iterable[Candidate[K]]) -> K | None:
        """Return the key of the winning candidate, or ``None`` when there is none."""
        best: Candidate[K] | None = None
        for c in candidates:
            if best is None or (c.priority, -c.started_at) > (best.priority, -best.started_at):
                best = c
        return None if best is None else best.key


@dataclass(slots=True)
class _Stream:
    buffer: JitterBuffer
    priority: int
    last_push: float
    muted: int = field(default=0)


class StreamMixer(Generic[K]):
    """One jitter buffer per talker; :meth:`pop` plays the picked talker and mutes the others.

    Muted streams keep being paced (their due frames are discarded), so when the winner stops
    the next one continues at its live point. Talkers silent for ``idle_timeout_s`` are
    forgotten. Extra keyword arguments configure each :class:`JitterBuffer`.
    """

    def __init__(self, idle_timeout_s: float = 30.0, **buffer_options: Any) -> None:
        self.idle_timeout_s = idle_timeout_s
        self._options = buffer_options
        self._streams: dict[K, _Stream] = {}
        self.current: K | None = None
        """The talker picked by the last :meth:`pop` (``None`` when nobody is active)."""

    def push(
        self,
        talker: K,
        sequence: int,
        payload: bytes,
        now: float,
        priority: int = 0,
        initial_delay_ms: float | None = None,
        *,
        repeat: bool = False,
        reach: int = 0,
    ) -> bool:
        """Queue a packet from ``talker``; ``priority`` is that talker's current priority.

        ``initial_delay_ms`` starts a new stream's buffer at a delay learnt before (the
        same talker's previous burst) instead of the configured default.
        """
        stream = self._streams.get(talker)
        if stream is None:
            options = dict(self._options)
            if initial_delay_ms is not None:
                options["initial_delay_ms"] = initial_delay_ms
            buffer = JitterBuffer(**options)
            stream = self._streams[talker] = _Stream(buffer, priority, now)
        kept = stream.buffer.push(sequence, payload, now, repeat=repeat, reach=reach)
        stream.priority = priority
        stream.last_push = now
        return kept

    def end_burst(self, talker: K) -> None:
        """``talker`` released: its buffered frames still play, then it goes idle."""
        stream = self._streams.get(talker)
        if stream is not None:
            stream.buffer.end_burst()

    def buffer(self, talker: K) -> JitterBuffer | None:
        """The talker's jitter buffer (for its statistics), if known."""
        stream = self._streams.get(talker)
        return None if stream is None else stream.buffer

    def muted_frames(self, talker: K) -> int:
        """Frames of ``talker`` discarded because another talker was picked."""
        stream = self._streams.get(talker)
        return 0 if stream is None else stream.muted

    def talkers(self) -> list[K]:
        """Talkers with a buffer (active or recently heard)."""
        return list(self._streams)

    def pop(self, now: float) -> tuple[K, Output] | None:
        """Return ``(talker, instruction)`` for the picked talker's next due frame, or ``None``.

        Call it like :meth:`JitterBuffer.pop`: again until it returns ``None``.
        """
        for key in [
            k
            for k, s in self._streams.items()
            if not s.buffer.active and now - s.last_push > self.idle_timeout_s
        ]:
            del self._streams[key]
        self.current = PriorityPicker.pick(
            Candidate(k, s.priority, s.buffer.started_at)
            for k, s in self._streams.items()
            if s.buffer.active and s.buffer.started_at is not None
        )
        for key, stream in self._streams.items():
            if key == self.current:
                continue
            while stream.buffer.pop(now) is not None:
                stream.muted += 1
        if self.current is None:
            return None
        out = self._streams[self.current].buffer.pop(now)
        return None if out is None else (self.current, out)
