"""A call's receive side without I/O: RTP packets in, 20 ms frames of audio out.

aiortc's own audio jitter buffer is bypassed (:func:`ptt_client.calls.aiortc_patches.tap_receiver`):
it waits 80 ms before the first frame and, after a single lost packet, plays 280 ms late for
the rest of the call (aiortc issue #543). :class:`CallPlayout` uses the radio's adaptive
:class:`ptt_client.jitter.JitterBuffer` instead, which has a playout clock, bounds the delay
(a backlog over ``max_delay_ms`` is trimmed) and says for each due frame whether to play it,
rebuild it from the next packet's in-band FEC or conceal it, and decodes with the radio's
:class:`ptt_client.codec.OpusDecoder`. Pure: arrival and playout times are passed in.

A call is one long talk spurt, so the buffer's target delay is fixed when the stream starts
(``initial_delay_ms``) and re-measured only after the stream pauses (an underrun): a path
whose jitter grows during the call shows as late (concealed) frames, not as more delay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from ptt_client.codec import CodecError, OpusDecoder, Pcm, frame_samples
from ptt_client.jitter import Conceal, JitterBuffer, JitterStats, Play, Recover

__all__ = ["FRAME_MS", "CallPlayout", "Frame", "SequenceUnwrapper"]

FRAME_MS: Final = 20
_FRAME_SAMPLES: Final = frame_samples(FRAME_MS)
_U16: Final = 1 << 16
_U32: Final = 1 << 32


class SequenceUnwrapper:
    """RTP sequence numbers (16 bits, RFC 3550 5.1) to the 32-bit numbers the jitter buffer
    takes: each packet's number is placed nearest the highest one seen so far, so the count
    goes on across 65535 -> 0 and a reordered packet stays behind."""

    def __init__(self) -> None:
        self._highest: int | None = None

    def extend(self, sequence: int) -> int:
        """The 32-bit sequence number for RTP sequence number ``sequence`` (0-65535)."""
        if not 0 <= sequence < _U16:
            raise ValueError(f"RTP sequence number {sequence!r} is not 16 bits")
        if self._highest is None:
            # Start a wrap's worth up, so a reordered packet before the first stays positive.
            extended = _U16 + sequence
        else:
            extended = self._highest + (sequence - self._highest + _U16 // 2) % _U16 - _U16 // 2
        if self._highest is None or extended > self._highest:
            self._highest = extended
        return extended % _U32


@dataclass(frozen=True, slots=True)
class Frame:
    """20 ms of decoded audio and how it was made."""

    pcm: Pcm
    kind: Literal["play", "fec", "conceal"]
    sequence: int
    """The frame's 32-bit sequence number (see :class:`SequenceUnwrapper`)."""
    """``play``: from its own packet; ``fec``: rebuilt from the next packet's in-band FEC;
    ``conceal``: invented by the decoder (packet-loss concealment)."""


class CallPlayout:
    """Reorders the other radio's Opus packets and decodes one 20 ms frame per due time."""

    def __init__(self, initial_delay_ms: float = 40.0, max_delay_ms: float = 200.0) -> None:
        self.buffer = JitterBuffer(
            frame_ms=FRAME_MS,
            initial_delay_ms=initial_delay_ms,
            max_delay_ms=max_delay_ms,
            # Packets held and how far ahead one may be: one second of audio.
            capacity=50,
        )
        self._decoder = OpusDecoder()
        self._sequences = SequenceUnwrapper()

    @property
    def stats(self) -> JitterStats:
        """The jitter buffer's counters (played, recovered, concealed, late...)."""
        return self.buffer.stats

    def push(self, sequence: int, payload: bytes, now: float) -> bool:
        """Accept the RTP packet numbered ``sequence`` (16 bits) that arrived at ``now``;
        returns whether the buffer kept it (duplicates and late packets are dropped)."""
        if not payload:
            return False  # nothing to decode: its frame is concealed when due
        return self.buffer.push(self._sequences.extend(sequence), payload, now)

    def next_due(self) -> float | None:
        """When :meth:`pop` will next have a frame (``None``: nothing buffered)."""
        return self.buffer.next_due()

    def pop(self, now: float) -> Frame | None:
        """The frame due at ``now``, or ``None`` if none is; call again while it returns
        frames (a late caller gets every frame it missed)."""
        instruction = self.buffer.pop(now)
        if instruction is None:
            return None
        sequence = instruction.sequence
        try:
            if isinstance(instruction, Play):
                return Frame(self._decoder.decode(instruction.payload), "play", sequence)
            if isinstance(instruction, Recover):
                pcm = self._decoder.decode_fec(instruction.next_payload, _FRAME_SAMPLES)
                return Frame(pcm, "fec", sequence)
            assert isinstance(instruction, Conceal)
        except CodecError:
            pass  # a packet libopus rejects is a lost packet
        try:
            return Frame(self._decoder.conceal(_FRAME_SAMPLES), "conceal", sequence)
        except CodecError:
            return Frame(np.zeros(_FRAME_SAMPLES, dtype=np.int16), "conceal", sequence)
