"""Burst signatures: proof that the voice frames of a burst came from the talker's device.

Every member holds the channel's epoch key, so SFrame alone cannot stop one member
from sealing frames under another member's KID (RFC 9605's security considerations:
a shared key gives no per-sender authentication). The talker therefore signs, with
its credential's Ed25519 key, a **statement** at least once a second and at the end
of the burst:

    channel id, burst id, and for each frame sent since the previous statement
    its sequence number and SHA-256-128 hash (the first 16 bytes of SHA-256 over
    the sealed SFrame frame, whose AEAD tag already binds the media inner header)

Listing (sequence, hash) pairs rather than a running hash over all frames is what
makes this loss-tolerant: a running hash breaks at the first lost packet, and on a
cellular uplink that means most bursts would never verify. A listener that missed
frames still verifies every frame it did get; the missing ones are just reported as
missing. One Ed25519 signature (~45 us) covers up to :data:`MAX_ENTRIES` frames, so
signing costs about 70 us per second of 50 frame/s audio instead of 2.3 ms.

A signed statement is ``version byte | msgpack``, at most :data:`MAX_STATEMENT_SIZE`
bytes, so it fits in one media datagram next to the inner header and hop-layer
overhead. Decoding checks every size first; anything malformed or wrongly signed
raises :class:`~crypto.errors.SignatureError`.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Final, TypeVar

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crypto.errors import ForgedFrameError, SignatureError
from crypto.identity import Credential, DeviceKeys

__all__ = [
    "DEFAULT_INTERVAL",
    "HASH_SIZE",
    "MAX_ENTRIES",
    "MAX_STATEMENT_SIZE",
    "BurstSigner",
    "BurstStatement",
    "BurstVerifier",
    "FrameStatus",
    "StatementCheck",
    "decode_statement",
    "frame_hash",
]

HASH_SIZE: Final = 16
"""SHA-256 truncated to 128 bits: second-preimage resistance is what matters here."""
MAX_ENTRIES: Final = 40
"""Frames per statement: 40 x (5-byte sequence + 16-byte hash) keeps the worst case under
:data:`MAX_STATEMENT_SIZE`; at 50 frame/s the talker signs every 0.8 s."""
MAX_STATEMENT_SIZE: Final = 1000
DEFAULT_INTERVAL: Final = 1.0
"""Longest time between statements (seconds), so a listener can vouch for audio it played
no more than about a second ago."""

_VERSION: Final = 1
_SIGNATURE_SIZE: Final = 64
_CONTEXT: Final = b"fieldradio burst statement v1\x00"
_MAX_HASHES_PER_SEQUENCE: Final = 4
_DEFAULT_MAX_FRAMES: Final = 4096  # > a 30 s burst (MCPTT T2 stop talking) at 50 frame/s

_V = TypeVar("_V")
_U32 = Annotated[int, msgspec.Meta(ge=0, lt=2**32)]
_ENCODER: Final = msgspec.msgpack.Encoder()


def frame_hash(frame: bytes) -> bytes:
    """SHA-256-128 of a sealed frame: what a statement lists for it."""
    return hashlib.sha256(frame).digest()[:HASH_SIZE]


class BurstStatement(msgspec.Struct, array_like=True, frozen=True):
    """One signed statement: the frames ``sequences`` of burst ``burst_id`` hash to ``hashes``.

    ``hashes`` is the concatenation of one :data:`HASH_SIZE`-byte hash per sequence,
    in the same order. ``end`` marks the talker's last statement of the burst.
    """

    channel_id: _U32
    burst_id: _U32
    sequences: Annotated[tuple[_U32, ...], msgspec.Meta(max_length=MAX_ENTRIES)]
    hashes: Annotated[bytes, msgspec.Meta(max_length=MAX_ENTRIES * HASH_SIZE)]
    end: bool
    signature: Annotated[
        bytes, msgspec.Meta(min_length=_SIGNATURE_SIZE, max_length=_SIGNATURE_SIZE)
    ]

    def signed_part(self) -> bytes:
        """The bytes the Ed25519 signature covers (context label, version, fields)."""
        return (
            _CONTEXT
            + bytes((_VERSION,))
            + _ENCODER.encode(
                (self.channel_id, self.burst_id, self.sequences, self.hashes, self.end)
            )
        )

    def entries(self) -> Iterable[tuple[int, bytes]]:
        """``(sequence, hash)`` pairs."""
        for i, sequence in enumerate(self.sequences):
            yield sequence, self.hashes[i * HASH_SIZE : (i + 1) * HASH_SIZE]

    def to_bytes(self) -> bytes:
        """Wire form: version byte, then msgpack."""
        return bytes((_VERSION,)) + _ENCODER.encode(self)


_DECODER: Final = msgspec.msgpack.Decoder(BurstStatement)


def decode_statement(data: bytes) -> BurstStatement:
    """Parse a signed statement without checking its signature.

    Raises :class:`SignatureError` if it is empty, too large, of an unknown version,
    not valid msgpack, or inconsistent (hash count, repeated or unordered sequences).
    """
    if len(data) > MAX_STATEMENT_SIZE:
        raise SignatureError(
            f"burst statement of {len(data)} bytes exceeds {MAX_STATEMENT_SIZE}: dropped"
        )
    if not data:
        raise SignatureError("empty burst statement: dropped")
    if data[0] != _VERSION:
        raise SignatureError(
            f"burst statement version {data[0]} is not supported (expected {_VERSION}):"
            " update the client"
        )
    try:
        statement = _DECODER.decode(data[1:])
    except msgspec.MsgspecError as exc:
        raise SignatureError(f"malformed burst statement: {exc}") from None
    sequences = statement.sequences
    if len(statement.hashes) != HASH_SIZE * len(sequences):
        raise SignatureError("burst statement lists a different number of hashes and sequences")
    if any(a >= b for a, b in itertools.pairwise(sequences)):
        raise SignatureError("burst statement sequences are not strictly increasing")
    return statement


class BurstSigner:
    """The talker side: collects frame hashes and signs statements over them.

    Call :meth:`add` for every sealed frame sent, :meth:`due` after it, and :meth:`sign`
    when due and at the end of the burst (``end=True``). Pure: time is passed in.
    """

    __slots__ = (
        "_hashes",
        "_keys",
        "_last_sequence",
        "_last_signed",
        "_sequences",
        "burst_id",
        "channel_id",
        "interval",
        "max_entries",
    )

    def __init__(
        self,
        keys: DeviceKeys,
        channel_id: int,
        burst_id: int,
        now: float,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        """Sign burst ``burst_id`` on ``channel_id`` with ``keys``; the burst starts at ``now``."""
        if not 1 <= max_entries <= MAX_ENTRIES:
            raise SignatureError(f"max_entries must be 1..{MAX_ENTRIES}")
        for name, value in (("channel id", channel_id), ("burst id", burst_id)):
            if not 0 <= value < 2**32:
                raise SignatureError(f"{name} {value} is outside 0..2**32-1")
        self._keys = keys
        self.channel_id = channel_id
        self.burst_id = burst_id
        self.interval = interval
        self.max_entries = max_entries
        self._sequences: list[int] = []
        self._hashes: list[bytes] = []
        self._last_sequence = -1
        self._last_signed = now

    @property
    def pending(self) -> int:
        """Frames added but not yet covered by a statement."""
        return len(self._sequences)

    def add(self, sequence: int, frame: bytes) -> None:
        """Record a sent frame (the sealed SFrame bytes). Sequences must increase."""
        if not self._last_sequence < sequence < 2**32:
            raise SignatureError(
                f"frame sequence {sequence} does not follow {self._last_sequence}: each frame"
                " of a burst needs a new, higher sequence number"
            )
        self._last_sequence = sequence
        self._sequences.append(sequence)
        self._hashes.append(frame_hash(frame))

    def due(self, now: float) -> bool:
        """True when a statement should be signed now: a full one, or ``interval`` elapsed."""
        pending = len(self._sequences)
        return pending >= self.max_entries or (
            pending > 0 and now - self._last_signed >= self.interval
        )

    def sign(self, now: float, *, end: bool = False) -> bytes:
        """Sign a statement over the oldest pending frames (at most ``max_entries``).

        With ``end=True`` the statement is marked as the burst's last, if it covers every
        pending frame; otherwise :meth:`due` stays true and the caller signs again.
        """
        count = min(len(self._sequences), self.max_entries)
        sequences = tuple(self._sequences[:count])
        hashes = b"".join(self._hashes[:count])
        del self._sequences[:count]
        del self._hashes[:count]
        unsigned = BurstStatement(
            self.channel_id,
            self.burst_id,
            sequences,
            hashes,
            end and not self._sequences,
            bytes(_SIGNATURE_SIZE),
        )
        signed = msgspec.structs.replace(
            unsigned, signature=self._keys.sign(unsigned.signed_part())
        )
        self._last_signed = now
        return signed.to_bytes()


class FrameStatus(enum.Enum):
    """What a listener knows about one received frame."""

    PENDING = "pending"
    """No statement covering it has arrived yet."""
    VERIFIED = "verified"
    """Its hash is in a statement the talker signed."""
    FORGED = "forged"
    """A signed statement lists another hash for its sequence."""


@dataclass(frozen=True, slots=True)
class StatementCheck:
    """Outcome of one valid statement: frames it verified, and listed frames not received."""

    verified: tuple[int, ...]
    missing: tuple[int, ...]
    end: bool


class BurstVerifier:
    """The listener side: checks one talker's burst against its signed statements.

    :meth:`add` each opened frame (in any order, before or after the statement that
    covers it); :meth:`check` each statement. Memory is bounded by ``max_frames``
    sequences, oldest dropped first. Pure: no clock needed.
    """

    __slots__ = (
        "_forged",
        "_max_frames",
        "_public_key",
        "_received",
        "_signed",
        "_verified",
        "burst_id",
        "channel_id",
        "ended",
        "talker",
    )

    def __init__(
        self,
        talker: Credential | bytes,
        channel_id: int,
        burst_id: int,
        *,
        max_frames: int = _DEFAULT_MAX_FRAMES,
    ) -> None:
        """Verify burst ``burst_id`` on ``channel_id`` against ``talker``'s signing key.

        ``talker`` is the floor holder's (already verified) credential, or its raw
        Ed25519 public key. Raises :class:`SignatureError` if the key is invalid.
        """
        raw = talker.signing_key if isinstance(talker, Credential) else talker
        try:
            self._public_key = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise SignatureError("talker signing key is not a valid Ed25519 public key") from None
        self.talker = talker.user_id if isinstance(talker, Credential) else raw.hex()
        self.channel_id = channel_id
        self.burst_id = burst_id
        self.ended = False
        """True once the talker's final statement has been checked."""
        self._max_frames = max_frames
        self._received: dict[int, list[bytes]] = {}
        self._signed: dict[int, bytes] = {}
        self._verified: dict[int, None] = {}
        self._forged: dict[int, None] = {}

    @property
    def verified(self) -> tuple[int, ...]:
        """Sequences of received frames the talker's signature vouches for."""
        return tuple(self._verified)

    @property
    def forged(self) -> tuple[int, ...]:
        """Sequences at which a received frame does not match the signed hash."""
        return tuple(self._forged)

    @property
    def pending(self) -> tuple[int, ...]:
        """Sequences received but not covered by any statement yet."""
        return tuple(self._received)

    def covers(self, sequence: int) -> bool:
        """Whether a statement the talker signed vouches for the frame received at
        ``sequence`` (O(1), for a listener checking what it played)."""
        return sequence in self._verified

    @staticmethod
    def _bounded(store: dict[int, _V], limit: int) -> None:
        while len(store) > limit:
            del store[next(iter(store))]

    def add(self, sequence: int, frame: bytes) -> FrameStatus:
        """Record a received frame (the sealed SFrame bytes); returns what is known of it.

        Never raises for network input: a forged late frame returns ``FORGED`` and is
        listed in :attr:`forged`.
        """
        digest = frame_hash(frame)
        signed = self._signed.get(sequence)
        if signed is not None:
            if digest == signed:
                self._verified[sequence] = None
                self._bounded(self._verified, self._max_frames)
                return FrameStatus.VERIFIED
            self._forged[sequence] = None
            self._bounded(self._forged, self._max_frames)
            return FrameStatus.FORGED
        hashes = self._received.get(sequence)
        if hashes is None:
            self._received[sequence] = [digest]
            self._bounded(self._received, self._max_frames)
        elif digest not in hashes and len(hashes) < _MAX_HASHES_PER_SEQUENCE:
            # Two different frames with one sequence: at most one is genuine; keep both
            # until the statement says which.
            hashes.append(digest)
        return FrameStatus.PENDING

    def check(self, data: bytes) -> StatementCheck:
        """Check a signed statement and mark the frames it covers.

        Raises :class:`SignatureError` (and changes nothing) if the statement is
        malformed, for another channel or burst, or not signed by the talker.
        Raises :class:`ForgedFrameError` listing the sequences whose received frame
        does not match the signed hash; the matching frames are still marked verified.
        """
        statement = decode_statement(data)
        if statement.channel_id != self.channel_id or statement.burst_id != self.burst_id:
            raise SignatureError(
                f"statement is for channel {statement.channel_id} burst {statement.burst_id},"
                f" not channel {self.channel_id} burst {self.burst_id}: dropped"
            )
        try:
            self._public_key.verify(statement.signature, statement.signed_part())
        except InvalidSignature:
            raise SignatureError(
                f"burst statement for channel {self.channel_id} burst {self.burst_id} is not"
                f" signed by {self.talker!r}: someone else is talking under their name"
            ) from None
        verified: list[int] = []
        missing: list[int] = []
        forged: list[int] = []
        for sequence, digest in statement.entries():
            previous = self._signed.get(sequence)
            if previous is not None and previous != digest:
                # The talker signed two different frames for one sequence: trust neither.
                forged.append(sequence)
                continue
            self._signed[sequence] = digest
            received = self._received.pop(sequence, None)
            if received is None:
                if sequence not in self._verified:
                    missing.append(sequence)
                continue
            if digest in received:
                verified.append(sequence)
                self._verified[sequence] = None
            if any(other != digest for other in received):
                forged.append(sequence)
        for sequence in forged:
            self._forged[sequence] = None
        self._bounded(self._signed, self._max_frames)
        self._bounded(self._verified, self._max_frames)
        self._bounded(self._forged, self._max_frames)
        if statement.end:
            self.ended = True
        if forged:
            raise ForgedFrameError(
                f"frames {', '.join(map(str, forged))} of burst {self.burst_id} on channel"
                f" {self.channel_id} do not match what {self.talker!r} signed: injected by"
                " someone holding the channel key",
                tuple(forged),
            )
        return StatementCheck(tuple(verified), tuple(missing), statement.end)
