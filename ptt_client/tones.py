"""Radio signalling tones as 48 kHz mono ``int16`` PCM, played locally to the user.

Each tone is a sequence of sine beeps and gaps (:data:`TONE_SPECS`), chosen so that a user
tells them apart without looking: distinct pitch, rhythm and length.

- :attr:`Tone.TALK_PERMIT` - floor granted, start talking (three quick mid beeps, 150 ms:
  short, because it adds to the MCPTT access time the user perceives, TS 22.179 KPI 1);
- :attr:`Tone.DENY` - floor denied or revoked (one long low tone);
- :attr:`Tone.ROGER` - transmission ended (one short high beep);
- :attr:`Tone.EMERGENCY` - emergency alert (a two-tone warble, 1 s, louder).

Every beep has 5 ms raised-cosine edges so it starts and stops without a click.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np
import numpy.typing as npt

from ptt_client.codec import SAMPLE_RATE, Pcm, frame_samples


class Tone(enum.Enum):
    """The tones the radio plays."""

    TALK_PERMIT = "talk_permit"
    DENY = "deny"
    ROGER = "roger"
    EMERGENCY = "emergency"


@dataclass(frozen=True, slots=True)
class Beep:
    """``duration_ms`` of a sine at ``frequency_hz`` (0 Hz: silence) at ``level`` (0-1 of full
    scale)."""

    frequency_hz: float
    duration_ms: float
    level: float = 0.25


_GAP = 0.0
_EDGE_MS: Final = 5.0

TONE_SPECS: Final[dict[Tone, tuple[Beep, ...]]] = {
    Tone.TALK_PERMIT: (
        Beep(1200, 40),
        Beep(_GAP, 15),
        Beep(1200, 40),
        Beep(_GAP, 15),
        Beep(1200, 40),
    ),
    Tone.DENY: (Beep(480, 300),),
    Tone.ROGER: (Beep(2000, 100),),
    Tone.EMERGENCY: tuple(
        beep for _ in range(4) for beep in (Beep(1400, 125, 0.35), Beep(900, 125, 0.35))
    ),
}


def _beep(spec: Beep) -> npt.NDArray[np.float64]:
    n = round(SAMPLE_RATE * spec.duration_ms / 1000)
    if spec.frequency_hz == _GAP:
        return np.zeros(n, dtype=np.float64)
    t = np.arange(n) / SAMPLE_RATE
    wave: npt.NDArray[np.float64] = spec.level * np.sin(2 * np.pi * spec.frequency_hz * t)
    edge = min(n // 2, round(SAMPLE_RATE * _EDGE_MS / 1000))
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    wave[:edge] *= ramp
    wave[n - edge :] *= ramp[::-1]
    return wave


@cache
def tone(kind: Tone) -> Pcm:
    """Return the PCM of ``kind`` (a shared read-only array; copy it to modify it)."""
    samples = np.concatenate([_beep(b) for b in TONE_SPECS[kind]])
    pcm: Pcm = np.rint(samples * 32767).astype(np.int16)
    pcm.flags.writeable = False
    return pcm


def tone_frames(kind: Tone, frame_ms: int = 20) -> list[Pcm]:
    """Split the tone into codec-sized frames, the last one padded with silence."""
    size = frame_samples(frame_ms)
    pcm = tone(kind)
    padded = np.zeros(-(-len(pcm) // size) * size, dtype=np.int16)
    padded[: len(pcm)] = pcm
    return [padded[i : i + size] for i in range(0, len(padded), size)]


def talk_permit_tone() -> Pcm:
    """Floor granted: start talking."""
    return tone(Tone.TALK_PERMIT)


def deny_tone() -> Pcm:
    """Floor denied or revoked."""
    return tone(Tone.DENY)


def roger_beep() -> Pcm:
    """Transmission ended (floor released)."""
    return tone(Tone.ROGER)


def emergency_tone() -> Pcm:
    """Emergency alert."""
    return tone(Tone.EMERGENCY)
