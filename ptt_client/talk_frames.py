"""The inner frames of this radio's own talk bursts: voice and signed statements, numbered.

Voice frames are numbered from 0, burst statements (the talker's signature over what it
sent, ``crypto.talker``) from 2^31: a statement numbered among the voice frames would leave
a gap every listener's jitter buffer fills with a lost frame that never existed. Each channel
has its own numbers and repeats: a broadcast group call sends every frame on several
channels at once, and each channel's listeners must see an unbroken sequence. Sealing is
the key ring's (``ptt_client.e2e``); this only numbers and asks it.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from ptt_client.e2e import Keyring
from ptt_client.protection import NONE, Protection
from ptt_protocol import media, repeats

__all__ = ["SIGNATURE_SEQUENCE_BASE", "TalkFrames"]

SIGNATURE_SEQUENCE_BASE: Final = 1 << 31
"""Voice frames are numbered below this, burst signatures from it on."""


class _Stream:
    """One channel's numbering and its burst's last frames."""

    __slots__ = ("burst_id", "sent", "statement", "voice")

    def __init__(self) -> None:
        self.voice = 0
        self.statement = SIGNATURE_SEQUENCE_BASE
        self.burst_id: int | None = None
        self.sent: deque[tuple[int, int, bytes]] = deque(maxlen=repeats.MAX_DISTANCE)
        """(sequence, flags, E2E frame) of the burst's last frames, for repeats."""


class TalkFrames:
    """Seals this radio's voice frames and burst statements with running sequence numbers."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._streams: dict[int, _Stream] = {}
        self.last_voice_sequence: int | None = None
        """Sequence number of the last voice frame sealed (for measurements)."""

    def _stream(self, channel_id: int) -> _Stream:
        stream = self._streams.get(channel_id)
        if stream is None:
            stream = self._streams[channel_id] = _Stream()
        return stream

    def voice(
        self,
        channel_id: int,
        burst_id: int,
        opus: bytes,
        now: float,
        protection: Protection = NONE,
    ) -> bytes:
        """The inner bytes of the next voice frame, with the repeats ``protection`` asks for
        (each an earlier frame of this burst exactly as it was sealed: no key is used twice)."""
        stream = self._stream(channel_id)
        if stream.burst_id != burst_id:
            stream.burst_id = burst_id
            stream.sent.clear()
        sequence = stream.voice
        stream.voice = (sequence + 1) % SIGNATURE_SEQUENCE_BASE
        inner = self._keyring.seal_voice(channel_id, burst_id, sequence, 0, opus, now)
        self.last_voice_sequence = sequence
        frame = inner[media.INNER_HEADER.size :]
        carried = [
            repeats.Repeat(sequence - sent, flags, sealed)
            for sent, flags, sealed in reversed(stream.sent)
            if sequence - sent in protection.distances
        ]
        stream.sent.append((sequence, 0, frame))
        if not protection.distances:
            return inner
        return repeats.pack_redundant(
            channel_id, burst_id, sequence, 0, frame, carried, protection.reach
        )

    def statement_due(self, channel_id: int, now: float) -> bool:
        return self._keyring.signature_due(channel_id, now)

    def statement(self, channel_id: int, burst_id: int, *, end: bool, now: float) -> bytes | None:
        """The signed statement over what was sent so far (``end``: the burst's last), or
        None when this radio holds no signer for the channel."""
        stream = self._stream(channel_id)
        sequence = stream.statement
        stream.statement = SIGNATURE_SEQUENCE_BASE + (sequence + 1) % SIGNATURE_SEQUENCE_BASE
        return self._keyring.seal_signature(channel_id, burst_id, sequence, end, now)
