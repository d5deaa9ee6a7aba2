"""A call's send side: the radio's microphone, encoded by the radio's own Opus encoder.

:class:`OpusSourceTrack` is an aiortc audio track whose ``recv()`` returns ``av.Packet`` objects
that already hold Opus data; aiortc's sender then only packs them into RTP. That replaces
aiortc's fixed encoder (stereo, 96 kbit/s, no FEC, run in the loop's default executor) by
:class:`ptt_client.codec.OpusEncoder` (mono, 24 kbit/s, in-band FEC), and measured 15-25 ms of
CPU less per call-second. Packets are paced in real time, one per 20 ms.

The track never ends by itself: when sending is off (half duplex), when the source has no more
audio or fails, it sends encoded silence, so RTP keeps flowing and the other radio's watchdog
(no packet for 1.5 s: the peer vanished) stays quiet.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ptt_client.audio import AudioError, AudioInput
from ptt_client.calls.errors import CallMediaError
from ptt_client.codec import (
    DEFAULT_BITRATE,
    MIN_LOSS_HINT_PCT,
    SAMPLE_RATE,
    OpusEncoder,
    Pcm,
    frame_samples,
)

__all__ = ["BITRATE", "FRAME_S", "OpusSourceTrack"]

logger = logging.getLogger(__name__)

FRAME_S: Final = 0.020
BITRATE: Final = DEFAULT_BITRATE
"""libopus 1.3 spends bits on in-band FEC at 24 kbit/s from 1 % expected loss (codec.py)."""
_FRAME_SAMPLES: Final = frame_samples(20)
_TIME_BASE: Final = fractions.Fraction(1, SAMPLE_RATE)
_MAX_BEHIND_FRAMES: Final = 5
"""A loop this many frames late skips them instead of sending a burst to catch up."""


class OpusSourceTrack(MediaStreamTrack):
    """Pre-encoded Opus from ``source`` (``None``: silence), 20 ms per packet."""

    kind = "audio"

    def __init__(
        self,
        source: AudioInput | None,
        encoder: OpusEncoder | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if source is not None and source.frame_samples != _FRAME_SAMPLES:
            raise CallMediaError(
                f"call audio needs 20 ms frames ({_FRAME_SAMPLES} samples), the source gives "
                f"{source.frame_samples}: open it with frame_ms=20"
            )
        self._source = source
        # No loss is expected until the peer's receiver reports say otherwise: at 24 kbit/s
        # libopus spends bits on the FEC copy as soon as the hint is above zero, and on a
        # clean path that costs PESQ-WB about one point (2.7 instead of 3.9 measured).
        self._encoder = encoder or OpusEncoder(
            bitrate=BITRATE, fec=True, expected_loss_pct=MIN_LOSS_HINT_PCT
        )
        self._clock = clock
        self._silence: Pcm = np.zeros(_FRAME_SAMPLES, dtype=np.int16)
        self._start: float | None = None
        self._count = 0
        self.sending = True
        """Whether the source is heard; when False its frames are read and dropped."""
        self.frames_sent = 0

    def set_expected_loss(self, pct: float) -> None:
        """The loss the peer reports: in-band FEC follows it (never below the radio's floor)."""
        self._encoder.set_expected_loss(max(MIN_LOSS_HINT_PCT, pct))

    async def recv(self) -> av.Packet[Any]:
        """The next 20 ms Opus packet, at its time."""
        if self.readyState != "live":
            raise MediaStreamError
        now = self._clock()
        if self._start is None:
            self._start = now
        else:
            delay = self._start + self._count * FRAME_S - now
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -_MAX_BEHIND_FRAMES * FRAME_S:
                # The loop stalled: send from now on rather than a burst of old frames.
                skipped = int(-delay / FRAME_S)
                self._count += skipped
        pcm = await self._read()
        if pcm is None or not self.sending:
            pcm = self._silence
        packet = av.Packet(self._encoder.encode(pcm))
        # The RTP timestamp counts samples (RFC 7587 4.1): aiortc derives it from pts.
        packet.pts = self._count * _FRAME_SAMPLES
        packet.time_base = _TIME_BASE
        self._count += 1
        self.frames_sent += 1
        return packet

    async def _read(self) -> Pcm | None:
        source = self._source
        if source is None:
            return None
        try:
            # A microphone read waits for the hardware: never on the event loop.
            pcm = (
                await asyncio.to_thread(source.read_frame)
                if source.blocking
                else source.read_frame()
            )
        except AudioError as exc:
            logger.warning("call audio source failed, sending silence: %s", exc)
            pcm = None
        if pcm is None:
            self._source = None  # ended: silence from now on
        return pcm
