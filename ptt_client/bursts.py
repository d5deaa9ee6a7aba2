"""Which talk bursts a radio plays on one channel, and how much of each it can vouch for.

Pure: time is passed in as ``now``. :class:`ptt_client.e2e.Keyring` keeps one
:class:`BurstTracker` per channel and asks it, for every received frame, which burst
the frame belongs to:

* the burst the last FloorTaken named (its talker is who the frame must come from);
* a burst that just ended, for :data:`ENDED_GRACE` seconds: its burst statements (the
  radio signs its tail when it releases or hears the revoke), and its voice only if it
  was released (the relay forwards a released burst's last frames for 300 ms, since the
  FloorRelease on TCP can overtake them);
* a burst this radio saw end (bounded memory, :data:`ENDED_LIMIT`): dropped, never held;
* any other burst: not named yet (UDP overtook its FloorTaken), held by the caller as an
  early frame until a FloorTaken names it.

"Verified" means verified: every frame played as a talker's is remembered with the time
it was played until a signed burst statement covers it. A frame still uncovered
:data:`UNVERIFIED_AFTER` seconds later (statements come at least once a second,
:mod:`crypto.talker`) makes the burst *distrusted*: reported once
(:meth:`BurstTracker.check`), and never shown as verified again.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Final

from crypto.talker import BurstVerifier

UNVERIFIED_AFTER: Final = 2.0
"""Seconds a played frame may wait for a statement covering it (signed at least every 1 s)."""
ENDED_GRACE: Final = 1.0
"""Seconds after a burst ends (FloorIdle, or another burst named) that its statements, and
for a released burst its last voice frames, are still taken: the relay forwards them for
up to 1 s and 0.3 s after the end, and they may arrive just after the control message."""
ENDED_LIMIT: Final = 1024
"""Ended burst ids remembered per channel (their frames are dropped, not held)."""
RECENT_LIMIT: Final = 4
"""Ended bursts still followed (grace or uncovered frames) per channel."""


@dataclass(eq=False)
class HeardBurst:
    """One burst this radio plays or just played: its talker, verifier and uncovered frames."""

    talker: str
    burst_id: int
    priority: int = 0
    """The floor priority FloorTaken named (the player mixes the highest)."""
    verifier: BurstVerifier | None = None
    voice_until: float = math.inf
    """Voice frames of this burst are played until then (inf while it is the named burst)."""
    statements_until: float = math.inf
    """Its burst statements are checked until then."""
    uncovered: deque[tuple[int, float]] = field(default_factory=deque)
    """(sequence, played at) of played frames no statement has covered yet, oldest first."""
    no_credential: bool = False
    """A frame played while the talker's credential was unknown (it can never verify)."""
    distrusted: bool = False
    """Found forged or unverified: never shown as verified again."""
    reported: bool = False
    """Its TalkerUnverified went out (once per burst)."""

    def played(self, sequence: int, now: float, *, covered: bool) -> None:
        """A frame of this burst was handed to the player; ``covered`` if a statement the
        talker signed already vouches for it."""
        if not covered and not self.reported:
            self.uncovered.append((sequence, now))

    def overdue(self, now: float) -> int:
        """How many played frames have gone uncovered longer than :data:`UNVERIFIED_AFTER`."""
        uncovered = self.uncovered
        verifier = self.verifier
        while uncovered and verifier is not None and verifier.covers(uncovered[0][0]):
            uncovered.popleft()
        count = 0
        for sequence, at in uncovered:
            if now - at < UNVERIFIED_AFTER:
                break
            if verifier is None or not verifier.covers(sequence):
                count += 1
        return count

    @property
    def settled(self) -> bool:
        """Nothing left to watch: no uncovered frame, or already reported."""
        return self.reported or not self.uncovered


FrameTarget = HeardBurst | None
"""What :meth:`BurstTracker.target` returns: the burst to play a frame under, or None."""


class BurstTracker:
    """One channel's bursts as this radio hears them (see the module docstring)."""

    __slots__ = ("_dropped", "_ended", "current", "recent")

    def __init__(self) -> None:
        self.current: HeardBurst | None = None
        """The burst the last FloorTaken named, until it ends."""
        self.recent: list[HeardBurst] = []
        """Ended bursts still followed, oldest first."""
        self._ended: OrderedDict[int, None] = OrderedDict()
        self._dropped: list[HeardBurst] = []
        """Ended bursts no longer followed (over :data:`RECENT_LIMIT`) with uncovered frames."""

    def __repr__(self) -> str:
        current = None if self.current is None else (self.current.talker, self.current.burst_id)
        return f"BurstTracker(current={current}, recent={len(self.recent)})"

    def has_ended(self, burst_id: int) -> bool:
        """Whether this radio saw ``burst_id`` end (its frames are dropped)."""
        return burst_id in self._ended

    def name(self, talker: str, burst_id: int, now: float) -> HeardBurst | None:
        """FloorTaken: ``talker`` holds the floor in ``burst_id``. Returns the burst, or None
        if this radio already saw that burst end (floor control does not reuse burst ids
        within a session, so only a replay names one again)."""
        current = self.current
        if current is not None and current.burst_id == burst_id:
            if current.talker == talker:
                return current  # the same burst again (late entry, raised priority)
            # Another talker for a burst already named: trust neither's frames from here.
            self.end(now, released=False)
            self._ended[burst_id] = None
            return None
        if burst_id in self._ended:
            return None
        # The burst heard until now was pre-empted (no FloorIdle came): its voice stops at
        # once, as the relay stops forwarding it; its signed tail may still come.
        self.end(now, released=False)
        self.current = HeardBurst(talker, burst_id)
        return self.current

    def end(self, now: float, *, released: bool) -> None:
        """The named burst is over: FloorIdle (``released``), a revoke, or this radio took
        the floor. Its id is remembered so that its frames are never held as early."""
        current, self.current = self.current, None
        if current is None:
            return
        current.voice_until = now + ENDED_GRACE if released else now
        current.statements_until = now + ENDED_GRACE
        self._ended[current.burst_id] = None
        while len(self._ended) > ENDED_LIMIT:
            self._ended.popitem(last=False)
        self.recent.append(current)
        self._trim_recent()

    def target(self, burst_id: int, statement: bool, now: float) -> HeardBurst | None:
        """The burst a frame of ``burst_id`` (``statement``: a burst statement) is played or
        checked under, or None (see :meth:`is_early`)."""
        current = self.current
        if current is not None and current.burst_id == burst_id:
            return current
        for held in self.recent:
            if held.burst_id == burst_id:
                until = held.statements_until if statement else held.voice_until
                return held if now < until else None
        return None

    def is_early(self, burst_id: int) -> bool:
        """A frame of ``burst_id`` that has no :meth:`target`: is it of a burst not named yet
        (hold it for its FloorTaken), rather than of one that ended (drop it)?"""
        current = self.current
        return burst_id not in self._ended and (current is None or current.burst_id != burst_id)

    def check(self, now: float) -> list[tuple[HeardBurst, int]]:
        """Bursts that just became unverified, each with its count of overdue frames; each
        is returned once and marked distrusted. Also forgets ended bursts left with nothing
        to watch."""
        found = []
        for heard in self._dropped:
            # No longer followed: a statement for it would not be checked, so it never will be.
            heard.reported = heard.distrusted = True
            found.append((heard, len(heard.uncovered)))
            heard.uncovered.clear()
        self._dropped.clear()
        bursts = [*self.recent, self.current] if self.current is not None else list(self.recent)
        for heard in bursts:
            if heard.reported:
                continue
            overdue = heard.overdue(now)
            if overdue:
                heard.reported = heard.distrusted = True
                heard.uncovered.clear()
                found.append((heard, overdue))
        self.recent = [
            held
            for held in self.recent
            if not (held.settled and now >= held.statements_until and now >= held.voice_until)
        ]
        return found

    def flush(self) -> list[tuple[HeardBurst, int]]:
        """Every followed burst that still has uncovered frames, as if their bound had passed
        (the connection is gone: no statement can arrive any more); then forget everything,
        ended ids included (a new session may reuse burst ids: the server restarted)."""
        found = self.check(-math.inf)  # the dropped ones; nothing is overdue at -inf
        bursts = [*self.recent, self.current] if self.current is not None else list(self.recent)
        for heard in bursts:
            if not heard.reported and heard.overdue(math.inf):
                heard.reported = heard.distrusted = True
                found.append((heard, len(heard.uncovered)))
                heard.uncovered.clear()
        self.current = None
        self.recent = []
        self._ended.clear()
        return found

    def _trim_recent(self) -> None:
        # Bounded (only a relay naming burst after burst fills it): the oldest goes, and if
        # it still had uncovered frames the next check reports it.
        while len(self.recent) > RECENT_LIMIT:
            oldest = self.recent.pop(0)
            if not oldest.settled:
                self._dropped.append(oldest)
