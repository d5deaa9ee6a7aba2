"""Per-sender SFrame keys for channel epochs: who seals with which key, and what a receiver accepts.

Key ids follow RFC 9605 5.2 (the MLS profile), without MLS's tree::

    KID = (sender_index << EPOCH_BITS) | (epoch % 2**EPOCH_BITS)

``sender_index`` is the member's position in the roster the epoch was made for
(:meth:`crypto.roster.Roster.sender_index`). ``EPOCH_BITS`` is 4: a receiver only
ever holds the current epoch and the few before it that are still inside the rekey
grace, so 16 values leave room for a burst of rekeys (a dispatcher removing members
one by one) without two held epochs sharing a KID, while keeping KIDs short: a
200-member channel's KIDs fit in 2 header bytes, 8 epoch bits would make it 3.

Each sender's SFrame ``base_key`` is derived from the epoch secret with HKDF-SHA256
(RFC 5869), ``info`` = label + channel + epoch + sender index, so every sender has its
own key and nonce space and a frame cannot be moved to another channel or epoch.
This mirrors RFC 9605 5.2, where ``base_key = HKDF-Expand(sframe_epoch_secret,
sender_index, Nh)``: replacing the epoch secret with an MLS exporter secret later
changes only :func:`sender_base_key`.

Rekey (Signal-style): a new epoch key is installed at receivers as soon as it
arrives (:meth:`FrameOpener.add_epoch`), and a sender switches to it only
``switch_delay`` seconds later (:meth:`FrameSealer.rekey`), so listeners already hold
the key when the first frame under it arrives and no burst is cut. The previous
epoch keeps opening frames for ``grace`` seconds after the newer one was installed,
then it is dropped: a removed member, who gets no envelope for the new epoch, can
no longer be heard once the grace has passed.

Counters: :class:`FrameSealer` never seals two frames with the same counter under
one KID in its lifetime. It cannot know what an earlier process sealed: after a
restart within an epoch the caller must resume from a persisted
:attr:`FrameSealer.next_counter` (``first_counter=``) or obtain a new epoch before
talking. Reusing a counter reuses an AES-GCM nonce, which leaks plaintext XORs and
the GHASH key.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.epoch import EpochKey
from crypto.errors import FrameError, KeyringError, ReplayError
from crypto.replay import ReplayWindow
from crypto.roster import Roster
from crypto.sframe import MAX_COUNTER, MAX_KID, CipherSuite, SFrameKey, decode_header

__all__ = [
    "BURSTS_PER_SENDER",
    "DEFAULT_GRACE",
    "DEFAULT_SWITCH_DELAY",
    "EPOCH_BITS",
    "MAX_SENDER_INDEX",
    "MAX_SPAN",
    "PLAUSIBLE_JUMP",
    "PLAUSIBLE_RATE",
    "REPLAY_WINDOW",
    "SUITE",
    "FrameOpener",
    "FrameSealer",
    "make_kid",
    "sender_base_key",
    "split_kid",
]

SUITE: Final = CipherSuite.AES_128_GCM_SHA256_128
EPOCH_BITS: Final = 4
_EPOCH_MASK: Final = (1 << EPOCH_BITS) - 1
MAX_SENDER_INDEX: Final = MAX_KID >> EPOCH_BITS
DEFAULT_SWITCH_DELAY: Final = 1.0
"""Seconds a sender waits after receiving a new epoch key before sealing with it."""
DEFAULT_GRACE: Final = 5.0
"""Seconds an old epoch still opens frames after a newer one is installed: the sender's
switch delay plus a few seconds of control-plane skew between members on cellular."""
REPLAY_WINDOW: Final = 1024
"""Counters below a burst's first accepted one that are still accepted (frames overtaken at
the start of a burst): ~20 s of 50 frame/s voice, far beyond any jitter buffer. From its
first frame on, every counter of the burst is remembered (up to :data:`MAX_SPAN`)."""
MAX_SPAN: Final = 1 << 14
"""Counters one burst's window covers at most (5.5 min at 50 frame/s, a 2 KB bitmap);
a longer burst's window slides, refusing counters this far behind its newest."""
BURSTS_PER_SENDER: Final = 8
"""Bursts per sender and epoch whose replay windows are kept (least recently used dropped)."""
PLAUSIBLE_JUMP: Final = 1000
PLAUSIBLE_RATE: Final = 100.0
"""A burst's counters may run ahead of its first accepted counter by at most
``PLAUSIBLE_JUMP + PLAUSIBLE_RATE`` x seconds since that frame: a talker seals 50 frames a
second, so twice that plus 20 s of slack refuses only counters no genuine talker reaches."""

_BASE_KEY_CONTEXT: Final = b"fieldradio sframe base key v1\x00"
_BASE_KEY_SIZE: Final = 32  # Nh of SHA-256, as RFC 9605 5.2 sizes base_key


def make_kid(sender_index: int, epoch: int) -> int:
    """The KID for ``sender_index`` in ``epoch`` (RFC 9605 5.2 with E = ``EPOCH_BITS``)."""
    if not 0 <= sender_index <= MAX_SENDER_INDEX:
        raise KeyringError(f"sender index {sender_index} is outside 0..{MAX_SENDER_INDEX}")
    if epoch < 0:
        raise KeyringError(f"epoch {epoch} is negative")
    return (sender_index << EPOCH_BITS) | (epoch & _EPOCH_MASK)


def split_kid(kid: int) -> tuple[int, int]:
    """``(sender_index, epoch % 2**EPOCH_BITS)`` from a KID."""
    return kid >> EPOCH_BITS, kid & _EPOCH_MASK


def sender_base_key(key: EpochKey, sender_index: int) -> bytes:
    """SFrame ``base_key`` of ``sender_index`` in ``key``'s channel epoch (HKDF-SHA256)."""
    if not 0 <= sender_index <= MAX_SENDER_INDEX:
        raise KeyringError(f"sender index {sender_index} is outside 0..{MAX_SENDER_INDEX}")
    info = (
        _BASE_KEY_CONTEXT
        + key.channel_id.to_bytes(4, "big")
        + key.epoch.to_bytes(4, "big")
        + sender_index.to_bytes(8, "big")
    )
    return HKDF(hashes.SHA256(), _BASE_KEY_SIZE, salt=None, info=info).derive(key.secret)


def _sframe_key(key: EpochKey, sender_index: int) -> SFrameKey:
    return SFrameKey(SUITE, make_kid(sender_index, key.epoch), sender_base_key(key, sender_index))


class FrameSealer:
    """The talker side: seals voice frames under the current epoch, never reusing a counter.

    Created with the epoch key in force; :meth:`rekey` schedules the switch to a newer
    one. Pure: time is passed in.
    """

    __slots__ = (
        "_channel_id",
        "_counters",
        "_epoch_key",
        "_first_counter",
        "_key",
        "_next",
        "_pending",
        "_sender_index",
        "switch_delay",
    )

    def __init__(
        self,
        key: EpochKey,
        sender_index: int,
        *,
        switch_delay: float = DEFAULT_SWITCH_DELAY,
        first_counter: int = 0,
    ) -> None:
        """Seal under ``key`` as ``sender_index``, starting at counter ``first_counter``.

        Every KID this sealer switches to later starts there too (see :meth:`rekey`).
        Pass ``first_counter`` = a persisted :attr:`next_counter` when resuming an epoch
        after a restart (see the module docstring).
        """
        if not 0 <= first_counter <= MAX_COUNTER:
            raise KeyringError(f"first counter {first_counter} is outside 0..2**64-1")
        self.switch_delay = switch_delay
        self._channel_id = key.channel_id
        # Next counter of every KID this sealer ever used: going back to an earlier
        # (epoch, index) must continue its counter, never restart it.
        self._counters: dict[int, int] = {}
        self._pending: tuple[EpochKey, int, float] | None = None
        self._epoch_key = key
        self._sender_index = sender_index
        self._key = _sframe_key(key, sender_index)
        self._next = first_counter
        self._first_counter = first_counter

    def __repr__(self) -> str:
        return (
            f"FrameSealer(channel={self._channel_id}, epoch={self._epoch_key.epoch},"
            f" sender_index={self._sender_index}, next_counter={self._next})"
        )

    @property
    def epoch(self) -> int:
        """The epoch frames are sealed under now (a pending switch is not applied yet)."""
        return self._epoch_key.epoch

    @property
    def sender_index(self) -> int:
        """The sender index in the current KID."""
        return self._sender_index

    @property
    def kid(self) -> int:
        """The current KID."""
        return self._key.kid

    @property
    def next_counter(self) -> int:
        """The counter the next frame under the current KID will carry (persist it)."""
        return self._next

    @property
    def pending_epoch(self) -> int | None:
        """The epoch a scheduled switch will move to, if any."""
        return None if self._pending is None else self._pending[0].epoch

    def _switch(self, key: EpochKey, sender_index: int) -> None:
        self._counters[self._key.kid] = self._next
        self._epoch_key = key
        self._sender_index = sender_index
        self._key = _sframe_key(key, sender_index)
        # A KID this sealer has not used yet starts where the first one did, not at 0: a
        # caller that starts from a clock (restart-safe) stays restart-safe after a rekey.
        self._next = self._counters.get(self._key.kid, self._first_counter)

    def rekey(self, key: EpochKey, sender_index: int, now: float) -> bool:
        """Offer an epoch key; returns True if it changes (or schedules a change to) the KID.

        * a newer epoch is used from ``now + switch_delay`` on (receivers install it at
          once, so they hold it before our first frame under it arrives); offering the
          same pending key again does not postpone the switch;
        * the current epoch with another sender index (the roster changed without a
          rekey) switches at once, receivers already hold that epoch;
        * the current epoch and index again, or an older epoch, changes nothing.

        Raises :class:`KeyringError` for another channel's key, or for a known epoch
        number with a different secret (the two keys cannot both be genuine).
        """
        if key.channel_id != self._channel_id:
            raise KeyringError(
                f"epoch key for channel {key.channel_id} offered to the sealer of channel"
                f" {self._channel_id}"
            )
        make_kid(sender_index, key.epoch)  # validates the index before anything changes
        current = self._epoch_key
        pending = self._pending
        for known in (current, None if pending is None else pending[0]):
            if known is not None and known.epoch == key.epoch and known.secret != key.secret:
                raise KeyringError(
                    f"two different keys for epoch {key.epoch} of channel {key.channel_id}:"
                    " the second one is refused; ask a dispatcher to rekey the channel"
                )
        if key.epoch == current.epoch:
            if sender_index == self._sender_index:
                return False
            self._switch(key, sender_index)
            return True
        if key.epoch < current.epoch:
            return False
        if pending is not None:
            if key.epoch < pending[0].epoch:
                return False
            if key.epoch == pending[0].epoch and sender_index == pending[1]:
                return False
        self._pending = (key, sender_index, now + self.switch_delay)
        return True

    def seal(self, metadata: bytes, payload: bytes, now: float) -> bytes:
        """Seal ``payload`` with ``metadata`` (the media inner header) as extra AAD.

        Applies a scheduled epoch switch once ``now`` reaches it. Raises
        :class:`KeyringError` if every counter of this KID is used (rekey the channel).
        """
        pending = self._pending
        if pending is not None and now >= pending[2]:
            self._pending = None
            self._switch(pending[0], pending[1])
        counter = self._next
        if counter > MAX_COUNTER:
            raise KeyringError(
                f"sender counters of epoch {self._epoch_key.epoch} are used up: rekey the"
                f" channel {self._channel_id}"
            )
        # Advance before sealing: even if sealing failed, the counter is never handed out twice.
        self._next = counter + 1
        return self._key.seal(counter, metadata, payload)


@dataclass(slots=True)
class _Window:
    """One sender's replay window within one burst: every counter from ``floor`` on, up to
    ``MAX_SPAN`` behind the newest."""

    first: int
    """The first counter accepted in this burst: the base of the plausibility bound."""
    first_at: float
    floor: int
    """Lowest counter this burst ever accepts (its first, less the opener's window)."""
    seen: ReplayWindow


@dataclass(slots=True)
class _Sender:
    """One sender's key within one epoch, and its replay windows of recent bursts."""

    key: SFrameKey
    bursts: OrderedDict[int, _Window] = field(default_factory=OrderedDict)
    """Burst id -> window, least recently used first, at most ``BURSTS_PER_SENDER``."""


@dataclass(slots=True)
class _Epoch:
    key: EpochKey
    expires: float = math.inf
    index_of: dict[str, int] | None = None
    senders: dict[int, _Sender] = field(default_factory=dict)


class FrameOpener:
    """The listener side: opens frames of the held epochs, from the floor holder only.

    Keeps each installed epoch's key until ``grace`` seconds after a newer epoch is
    installed, and one replay window per sender, epoch and burst (for the
    ``BURSTS_PER_SENDER`` bursts of each sender used last): every counter from ``window``
    below the burst's first accepted one on.
    A frame is refused (:class:`FrameError`, :class:`ReplayError` for a replay) if its
    header is bad, its epoch is unknown or past its grace, its KID names another sender
    than the one expected, its counter was already accepted, is too old or implausibly far
    ahead, or its tag does not verify; nothing changes then. Pure: time is passed in.

    Why per burst: every member holds the epoch key, so any member can seal a frame
    under another member's KID (RFC 9605 security considerations). With one window per
    sender, a single such frame with a counter far ahead moved the window there, and
    every later genuine frame of that sender was refused as too old for the rest of the
    epoch. Scoped per burst, a forged frame reaches only the burst it names; inside it
    the plausibility bound (``PLAUSIBLE_JUMP``, ``PLAUSIBLE_RATE``) refuses counters no
    real talker could have reached, and the window remembers every counter of the burst,
    so a forged frame takes only the counter it claims. Scoping does not open
    cross-burst replay: the burst id is in the metadata, which is AEAD associated data,
    so a frame cannot be presented under another burst's window without failing its tag.
    """

    __slots__ = ("_by_bits", "_channel_id", "_newest", "grace", "live", "window")

    def __init__(
        self, *, grace: float = DEFAULT_GRACE, window: int = REPLAY_WINDOW, live: bool = True
    ) -> None:
        """``live=False`` drops the plausibility bound, for a recording opened all at once
        (one ``now`` for a whole burst; its frames come from the store, not the network)."""
        if window < 1:
            raise KeyringError("replay window must hold at least one counter")
        self.grace = grace
        self.window = window
        self.live = live
        self._channel_id: int | None = None
        self._newest: int | None = None
        self._by_bits: dict[int, _Epoch] = {}

    def __repr__(self) -> str:
        return f"FrameOpener(channel={self._channel_id}, epochs={self.epochs})"

    @property
    def epochs(self) -> tuple[int, ...]:
        """Epoch numbers held now, oldest first (expired ones may linger until touched)."""
        return tuple(sorted(held.key.epoch for held in self._by_bits.values()))

    @property
    def current_epoch(self) -> int | None:
        """The newest installed epoch, or None before the first."""
        return self._newest

    def add_epoch(self, key: EpochKey, now: float, roster: Roster | None = None) -> bool:
        """Install ``key``; returns True if it was new.

        A newer epoch than all held ones becomes current and starts the grace of the
        older ones (they expire at ``now + grace``). Offering a held epoch again is a
        no-op that keeps its grace and replay windows (``roster`` is still recorded if
        it was missing). An epoch older than the current one that is not held is
        ignored: it is either already expired or arrived too late to matter, and
        installing it would reopen a window a removed member could talk through.

        ``roster`` (the roster the epoch was made for) lets :meth:`open` take the
        expected talker as a user id; sender indexes are per epoch, so after a removal
        the same member has another index in the old and the new epoch.

        Raises :class:`KeyringError` for another channel's key, a roster that is not
        the key's (channel and roster version), or a held epoch with a different secret.
        """
        if self._channel_id is not None and key.channel_id != self._channel_id:
            raise KeyringError(
                f"epoch key for channel {key.channel_id} offered to the opener of channel"
                f" {self._channel_id}"
            )
        index_of: dict[str, int] | None = None
        if roster is not None:
            if roster.channel_id != key.channel_id or roster.version != key.roster_version:
                raise KeyringError(
                    f"roster (channel {roster.channel_id}, version {roster.version}) is not the"
                    f" one epoch {key.epoch} was made for (channel {key.channel_id}, version"
                    f" {key.roster_version})"
                )
            index_of = {member.user_id: i for i, member in enumerate(roster.members)}
        bits = key.epoch & _EPOCH_MASK
        held = self._by_bits.get(bits)
        if held is not None and held.key.epoch == key.epoch:
            if held.key.secret != key.secret:
                raise KeyringError(
                    f"two different keys for epoch {key.epoch} of channel {key.channel_id}:"
                    " the second one is refused; ask a dispatcher to rekey the channel"
                )
            if held.index_of is None and index_of is not None:
                held.index_of = index_of
            return False
        if self._newest is not None and key.epoch < self._newest:
            return False
        self._channel_id = key.channel_id
        self._newest = key.epoch
        for other_bits, other in list(self._by_bits.items()):
            if other.expires <= now:
                del self._by_bits[other_bits]
            elif other.expires == math.inf:
                other.expires = now + self.grace
        # An epoch 16 (2**EPOCH_BITS) older shares the KID bits: the new one replaces it.
        self._by_bits[bits] = _Epoch(key, index_of=index_of)
        return True

    def open(
        self,
        metadata: bytes,
        frame: bytes,
        expected_sender: int | str,
        now: float,
        *,
        burst: int,
    ) -> bytes:
        """Open ``frame`` (SFrame header + ciphertext) with ``metadata`` as extra AAD.

        ``expected_sender`` is the member who holds the floor: their sender index, or
        their user id if the epoch was installed with its roster. ``burst`` is the burst
        id that ``metadata`` carries (the media inner header): replay state is kept per
        sender and burst, so pass the value the AAD authenticates. Returns the payload.
        Raises :class:`ReplayError` for a replayed, too old or implausibly advanced
        counter, :class:`FrameError` for everything else. A refused frame changes no
        state (except that an epoch found past its grace is dropped).
        """
        header = decode_header(frame)
        kid = header.kid
        bits = kid & _EPOCH_MASK
        held = self._by_bits.get(bits)
        if held is None:
            raise FrameError(
                f"no key for the epoch of KID {kid}: it is older than the held epochs, or its"
                " key has not arrived yet"
            )
        if now >= held.expires:
            del self._by_bits[bits]
            raise FrameError(
                f"epoch {held.key.epoch} ended {self.grace:g} s after the rekey: frame dropped"
            )
        if isinstance(expected_sender, str):
            if held.index_of is None:
                raise FrameError(
                    f"epoch {held.key.epoch} was installed without its roster: pass the"
                    " talker's sender index, or add the epoch with its roster"
                )
            expected = held.index_of.get(expected_sender)
            if expected is None:
                raise FrameError(
                    f"{expected_sender!r} is not on the roster of epoch {held.key.epoch}:"
                    " frame dropped"
                )
        else:
            expected = expected_sender
        index = kid >> EPOCH_BITS
        if index != expected:
            raise FrameError(
                f"frame KID names sender {index}, but sender {expected} holds the floor:"
                " dropped (impersonation attempt or stale floor state)"
            )
        sender = held.senders.get(index)
        if sender is None:
            # At most one derivation per floor holder per epoch: the index was checked first.
            sender = _Sender(_sframe_key(held.key, index))
            held.senders[index] = sender
        ctr = header.ctr
        windows = sender.bursts
        window = windows.get(burst)
        if window is not None:
            if ctr < window.floor or not window.seen.check(ctr):
                if ctr < window.floor or window.seen.newest - ctr >= MAX_SPAN:
                    raise ReplayError(
                        f"frame counter {ctr} is older than burst {burst} still accepts: too old"
                    )
                raise ReplayError(f"frame counter {ctr} of sender {index} was already received")
            if ctr > window.seen.newest and self.live:
                elapsed = max(0.0, now - window.first_at)
                if ctr - window.first > PLAUSIBLE_JUMP + PLAUSIBLE_RATE * elapsed:
                    raise ReplayError(
                        f"frame counter {ctr} of sender {index} is {ctr - window.first} past"
                        f" the first of burst {burst}, {elapsed:.1f} s ago: no talker counts"
                        " that fast, dropped (a member sealing under another's KID?)"
                    )
        payload = sender.key.open(header, frame, metadata)
        # Only an authenticated frame changes the window, so outsiders cannot touch it. A
        # member can, but only inside one burst, only as far ahead as the bound above, and
        # a counter it takes is only that one: every counter of the burst is remembered, so
        # no frame ahead pushes the talker's own frames out (until MAX_SPAN).
        if window is None:
            seen = ReplayWindow(MAX_SPAN)
            seen.mark(ctr)
            windows[burst] = _Window(ctr, now, max(0, ctr - self.window + 1), seen)
            if len(windows) > BURSTS_PER_SENDER:
                windows.popitem(last=False)
            return payload
        windows.move_to_end(burst)
        window.seen.mark(ctr)
        return payload

    def forget_bursts(self) -> None:
        """Drop every burst's replay window (the keys stay).

        For a new control session: burst ids restart when the server does, and a talker
        whose radio restarted meanwhile counts from its clock again, far past a reused
        burst id's old window. What then guards against an old burst replayed is the
        caller playing only the burst its floor control names (``ptt_client.e2e``).
        """
        for held in self._by_bits.values():
            for sender in held.senders.values():
                sender.bursts.clear()
