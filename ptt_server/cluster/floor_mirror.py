"""A channel's floor as a node that does not own it knows it (pure: news and time in).

The owner node decides the floor (:class:`ptt_server.channel_core.ChannelCore`) and
publishes :class:`ptt_server.cluster.wire.FloorNews` on every change, and as a heartbeat
while someone holds the floor. Every other node with listeners on the channel keeps the
latest news here, so its relay decides "may this datagram be forwarded" from memory, as on
one node. If the heartbeat stops (the owner died), :meth:`FloorMirror.owner_lost` says so
and :meth:`FloorMirror.end` ends the burst for this node's listeners: a dead owner never
leaves a channel stuck on a talker nobody can stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from ptt_server.cluster.wire import FloorNews


@dataclass(frozen=True, slots=True)
class _Trailing:
    talker: str
    burst_id: int
    voice_until: float
    statements_until: float


class FloorMirror:
    """The owner's latest floor news of one channel, with local times."""

    def __init__(self, channel_id: int) -> None:
        self.channel_id = channel_id
        self.owner: str | None = None
        self.holder: str | None = None
        self.burst_id: int | None = None
        self.taken: bytes | None = None
        """The encoded FloorTaken of the burst in progress (sent to late entrants)."""
        self.heard_at = 0.0
        self.last_burst_id = 0
        """The highest burst id heard of (a node taking the floor over numbers on from it)."""
        self._sequence = -1
        self._trailing: _Trailing | None = None

    def apply(self, news: FloorNews, now: float) -> bool:
        """Take the owner's news; False (and nothing changed) if it is older than held."""
        if news.owner == self.owner and news.sequence <= self._sequence:
            return False
        self.owner = news.owner
        self._sequence = news.sequence
        self.heard_at = now
        self.holder = news.holder
        self.burst_id = news.burst_id if news.holder is not None else None
        if news.burst_id is not None:
            self.last_burst_id = max(self.last_burst_id, news.burst_id)
        self.taken = news.taken if news.holder is not None else None
        trailing = news.trailing
        self._trailing = (
            None
            if trailing is None
            else _Trailing(
                trailing.talker,
                trailing.burst_id,
                now + trailing.voice_for,
                now + trailing.statements_for,
            )
        )
        return True

    def may_send(self, user: str) -> bool:
        return self.holder is not None and user == self.holder

    def accepts_trailing(self, user: str, burst_id: int, statement: bool, now: float) -> bool:
        """Whether a late frame of the burst that just ended may still be forwarded."""
        trailing = self._trailing
        if trailing is None or trailing.talker != user or trailing.burst_id != burst_id:
            return False
        return now < (trailing.statements_until if statement else trailing.voice_until)

    def owner_lost(self, now: float, lease: float) -> bool:
        """Whether a burst is in progress but its owner has been silent for a lease."""
        return self.holder is not None and now - self.heard_at > lease

    def end(self, now: float, statement_grace: float) -> str | None:
        """The owner is gone: the burst ends here; returns its talker (None if idle).

        The talker's signed tail is still forwarded for ``statement_grace`` seconds, as after
        any revoke, so listeners can vouch for what they heard.
        """
        holder, burst_id = self.holder, self.burst_id
        self.holder = self.burst_id = self.taken = None
        self.owner = None
        self._sequence = -1
        if holder is None or burst_id is None:
            return None
        self._trailing = _Trailing(holder, burst_id, now, now + statement_grace)
        return holder
