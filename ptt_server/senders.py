"""Which SFrame sender index each member of a channel has, per epoch: the relay's sender check.

A voice frame's SFrame KID is ``sender_index << 4 | epoch % 16`` (:mod:`crypto.keyring`),
the sender index being the member's position in the roster the epoch was made for, and
the epoch number is the roster version. The relay verifies every roster it installs but
holds no key, so it can still tell whose KID a frame claims: it forwards a voice frame
only if the KID's index is the sending session's own index in the roster of the KID's
epoch bits. That is what keeps a member from speaking as another member through an
honest relay (every member can derive every sender key of the epoch).

A talker keeps sealing under the previous epoch for about a second after a rekey
(:data:`crypto.keyring.DEFAULT_SWITCH_DELAY`), and indexes shift when a member is removed,
so the previous rosters' maps stay until ``grace`` seconds after the new epoch's first key
envelope went out, as :class:`crypto.keyring.FrameOpener` keeps old epochs for its grace
after the newer key arrived. Until an envelope of the new epoch exists nobody can seal
under it, and the old maps stay as long as that lasts.

Pure: time is passed in. The hot path reads :attr:`SenderIndexes.by_bits` directly (two
dict look-ups); expiry runs from a timer the channel arms at :meth:`next_expiry`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from crypto.keyring import DEFAULT_GRACE, EPOCH_BITS
from crypto.roster import Roster

EPOCH_MASK: Final = (1 << EPOCH_BITS) - 1


@dataclass(slots=True)
class _Held:
    version: int
    expires: float = math.inf


class SenderIndexes:
    """Per channel: epoch bits -> {user id: sender index} for the rosters still in use."""

    __slots__ = ("_held", "by_bits", "grace")

    def __init__(self, grace: float = DEFAULT_GRACE) -> None:
        self.grace = grace
        self.by_bits: dict[int, dict[str, int]] = {}
        """What the relay looks up per frame: KID & 15 -> user id -> index."""
        self._held: dict[int, _Held] = {}

    def __repr__(self) -> str:
        held = sorted((h.version, h.expires) for h in self._held.values())
        return f"SenderIndexes({held})"

    @property
    def versions(self) -> tuple[int, ...]:
        """Roster versions whose indexes are held, oldest first."""
        return tuple(sorted(h.version for h in self._held.values()))

    def install(self, roster: Roster) -> None:
        """The verified ``roster`` is now the channel's: its epoch's indexes are accepted.

        Older rosters' maps stay until a key of the new epoch is delivered (and then for
        the grace). A roster 16 versions older shares the epoch bits and is replaced.
        """
        bits = roster.version & EPOCH_MASK
        self.by_bits[bits] = {member.user_id: i for i, member in enumerate(roster.members)}
        self._held[bits] = _Held(roster.version)

    def key_delivered(self, epoch: int, now: float) -> None:
        """A key envelope of ``epoch`` went out: members start sealing under it about a
        second after they get it, so the older epochs' indexes now have ``grace`` left.

        An epoch whose roster is not held changes nothing: no envelope may end the grace
        of the roster that is in use (epoch number == roster version).
        """
        if not any(held.version == epoch for held in self._held.values()):
            return
        for held in self._held.values():
            if held.version < epoch and held.expires == math.inf:
                held.expires = now + self.grace

    def next_expiry(self) -> float | None:
        """When the next held map runs out of grace, or None."""
        expiries = [h.expires for h in self._held.values() if h.expires != math.inf]
        return min(expiries) if expiries else None

    def expire(self, now: float) -> None:
        """Drop the maps whose grace has passed by ``now``."""
        for bits, held in list(self._held.items()):
            if held.expires <= now:
                del self._held[bits]
                del self.by_bits[bits]
