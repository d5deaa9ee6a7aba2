"""Private-call media measurements: setup time, mouth-to-ear delay, CPU per call-second.

Two :class:`ptt_client.calls.CallMedia` objects in this process on 127.0.0.1 (host candidates
patched to loopback, as in the tests), directly or relay-only through a real coturn
(``bench.turn.Coturn``). Run ``python -m bench.calls_media [runs]``; the functions are meant
for ``bench/calls.py`` too.

- **setup**: from the caller's :meth:`~CallMedia.offer` call to the callee's first decoded
  frame written to its sink (``CallMedia.first_frame_at``);
- **mouth-to-ear**: the caller's source emits a 1 kHz tone burst after silence; from the
  moment the send track read the burst's first frame to the moment the callee's sink was
  given the first frame whose level crosses a threshold (the sound device's own buffer not
  included);
- **CPU**: ``time.process_time()`` of the whole process over a full-duplex window, divided
  by the window and by two (both radios run here).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.call_peer import loopback_only
from bench.turn import Coturn
from ptt_client.audio import AudioInput, AudioOutput
from ptt_client.calls import CallMedia, IceServer, IceSettings, aiortc_patches
from ptt_client.codec import Pcm

__all__ = ["ToneBurstInput", "ToneDetector", "call_cpu", "mouth_to_ear", "setup_time"]

_RATE = 48_000
_FRAME = 960


class ToneBurstInput(AudioInput):
    """Silence, then every ``period_frames`` a 40 ms 1 kHz burst; records when each burst's
    first frame was read (the "mouth" time)."""

    def __init__(self, period_frames: int = 25, clock: Callable[[], float] = time.monotonic):
        self.frame_samples = _FRAME
        self._n = 0
        self._period = period_frames
        self._clock = clock
        t = np.arange(2 * _FRAME) / _RATE
        self._burst = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        self.sent_at: list[float] = []

    def read_frame(self) -> Pcm | None:
        """Silence or a burst frame."""
        k = self._n % self._period
        self._n += 1
        if self._n > self._period and k < 2:  # the first period is silent (call setup)
            if k == 0:
                self.sent_at.append(self._clock())
            return self._burst[k * _FRAME : (k + 1) * _FRAME].copy()
        return np.zeros(_FRAME, dtype=np.int16)


class ToneDetector(AudioOutput):
    """Records when a frame loud enough to be a burst arrives after a quiet one (the "ear")."""

    def __init__(self, threshold: float = 3_000.0) -> None:
        self._threshold = threshold
        self._quiet = True
        self.heard_at: list[float] = []

    def write(self, pcm: Pcm) -> None:
        """Check ``pcm``'s level."""
        loud = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > self._threshold
        if loud and self._quiet:
            self.heard_at.append(time.monotonic())
        self._quiet = not loud


class _FirstWrite(AudioOutput):
    def __init__(self) -> None:
        self.written = asyncio.Event()

    def write(self, pcm: Pcm) -> None:
        self.written.set()


@dataclass
class Turn:
    """A TURN server to use (``bench.turn.Coturn`` provides these)."""

    url: str
    credentials: Callable[[str], tuple[str, str]]

    def settings(self, user: str) -> IceSettings:
        username, password = self.credentials(user)
        return IceSettings((IceServer((self.url,), username, password),), relay_only=True)


def _settings(turn: Turn | None, user: str) -> IceSettings:
    return IceSettings() if turn is None else turn.settings(user)


async def _connect(caller: CallMedia, callee: CallMedia) -> float:
    start = time.monotonic()
    await caller.accept(await callee.answer(await caller.offer()))
    await asyncio.gather(caller.wait_connected(), callee.wait_connected())
    return start


async def setup_time(turn: Turn | None = None) -> float:
    """Seconds from offer() to the callee's first decoded frame."""
    heard = _FirstWrite()
    caller = CallMedia(_settings(turn, "alice"), None, None)
    callee = CallMedia(_settings(turn, "bob"), None, heard)
    try:
        start = await _connect(caller, callee)
        await heard.written.wait()
        assert callee.first_frame_at is not None
        return callee.first_frame_at - start
    finally:
        await asyncio.gather(caller.close(), callee.close())


async def mouth_to_ear(seconds: float = 5.0, turn: Turn | None = None) -> list[float]:
    """Mouth-to-ear delays (s) of the tone bursts sent during ``seconds`` of call."""
    source, ear = ToneBurstInput(), ToneDetector()
    caller = CallMedia(_settings(turn, "alice"), source, None)
    callee = CallMedia(_settings(turn, "bob"), None, ear)
    try:
        await _connect(caller, callee)
        await asyncio.sleep(seconds)
    finally:
        await asyncio.gather(caller.close(), callee.close())
    return [h - s for s, h in zip(source.sent_at, ear.heard_at, strict=False)]


async def call_cpu(seconds: float = 10.0, turn: Turn | None = None) -> float:
    """CPU milliseconds per call-second and per radio, full duplex (bursts both ways)."""
    caller = CallMedia(_settings(turn, "alice"), ToneBurstInput(), ToneDetector())
    callee = CallMedia(_settings(turn, "bob"), ToneBurstInput(), ToneDetector())
    try:
        await _connect(caller, callee)
        await asyncio.sleep(1.0)  # past setup: steady state only
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    finally:
        await asyncio.gather(caller.close(), callee.close())
    return cpu / wall * 1000 / 2


def _summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return (
        f"{name}: median {statistics.median(ms):.0f} ms, p90 {p90:.0f}, min {ms[0]:.0f}, "
        f"max {ms[-1]:.0f}, over 300 ms: {sum(v > 300 for v in ms)} (n={len(ms)})"
    )


async def _main(runs: int) -> None:
    loopback_only()
    with Coturn(user_quota=1000) as coturn:
        turn = Turn(coturn.url, coturn.credentials)
        print(_summary("setup, direct", [await setup_time() for _ in range(runs)]))
        print(_summary("setup, relay-only", [await setup_time(turn) for _ in range(runs)]))
        first = aiortc_patches.FIRST_RETRANSMIT_S
        setattr(aiortc_patches, "FIRST_RETRANSMIT_S", 0.5)  # noqa: B010 - aioice's own RTO
        try:
            aioice_rto = [await setup_time(turn) for _ in range(runs)]
        finally:
            setattr(aiortc_patches, "FIRST_RETRANSMIT_S", first)  # noqa: B010
        print(_summary("setup, relay-only, aioice's 0.5 s first retransmit", aioice_rto))
        print(_summary("mouth-to-ear, direct", await mouth_to_ear(5.0)))
        print(_summary("mouth-to-ear, relay-only", await mouth_to_ear(5.0, turn)))
        print(f"CPU per radio, full duplex, direct: {await call_cpu(10.0):.0f} ms/s")
        print(f"CPU per radio, full duplex, relay-only: {await call_cpu(10.0, turn):.0f} ms/s")


if __name__ == "__main__":
    asyncio.run(_main(int(sys.argv[1]) if len(sys.argv) > 1 else 10))
