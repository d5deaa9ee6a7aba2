"""Two CallMedia objects in one process, a recording sink, and speech to send."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.turn import Coturn
from ptt_client.audio import AudioOutput, WavFileInput, load_wav
from ptt_client.calls import CallMedia, IceServer, IceSettings
from ptt_client.codec import Pcm
from ptt_client.samples import sample_paths


def speech(index: int = 0) -> Path:
    """One of the committed speech samples (2-3 s each)."""
    return sorted(sample_paths())[index]


def speech_pcm(index: int = 0) -> Pcm:
    return load_wav(speech(index))


class RecordingOutput(AudioOutput):
    """Keeps everything written, with the monotonic time of each write; :meth:`wait_for`
    returns once a given amount of audio arrived."""

    def __init__(self) -> None:
        self.chunks: list[Pcm] = []
        self.times: list[float] = []
        self.samples = 0
        self._want = 0
        self._enough = asyncio.Event()

    def write(self, pcm: Pcm) -> None:
        self.chunks.append(pcm.copy())
        self.times.append(time.monotonic())
        self.samples += len(pcm)
        if self._want and self.samples >= self._want:
            self._enough.set()

    async def wait_for(self, samples: int) -> None:
        """Until at least ``samples`` samples were written."""
        self._want = samples
        if self.samples >= samples:
            return
        self._enough.clear()
        await self._enough.wait()

    def pcm(self) -> Pcm:
        return np.concatenate([np.zeros(0, np.int16), *self.chunks])


@dataclass
class Ended:
    """Records on_ended calls."""

    reasons: list[str] = field(default_factory=list)

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


async def negotiate(caller: CallMedia, callee: CallMedia) -> None:
    """Offer, answer, accept (no signatures here: the signalling layer adds them)."""
    offer = await caller.offer()
    answer = await callee.answer(offer)
    await caller.accept(answer)


def relay_settings(turn: Coturn, user: str) -> IceSettings:
    username, password = turn.credentials(user)
    return IceSettings(servers=(IceServer((turn.url,), username, password),), relay_only=True)


def wav_source(index: int = 0) -> WavFileInput:
    return WavFileInput(speech(index))
