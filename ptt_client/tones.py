"""Radio signalling tones as 48 kHz mono ``int16`` PCM, played locally to the user.

Each tone is a sequence of sine beeps and gaps (:data:`TONE_SPECS`), chosen so that a user
tells them apart without looking: distinct pitch, rhythm and length.

- :attr:`Tone.TALK_PERMIT` - floor granted, start talking (three quick mid beeps, 150 ms:
  short, because it adds to the MCPTT access time the user perceives, TS 22.179 KPI 1);
- :attr:`Tone.DENY` - floor denied or revoked (one long low tone);
- :attr:`Tone.ROGER` - transmission ended (one short high beep);
- :attr:`Tone.EMERGENCY` - emergency alert (a two-tone warble, 1 s, louder).

Every beep has 5 ms raised-cosine edges so it starts and stops without a click.

:class:`ToneQueue` holds the tones waiting to play. Tones come from network events, so it
bounds them (issue 9: 300 emergency alerts queued 299 s of tone and the radio played none of
the next call): emergency tones are coalesced (one per alert, at most one every few seconds,
never two waiting), the queue holds at most :data:`MAX_QUEUED_TONE_S` of tone, and tones give
way to voice: the player drops what is queued, even a tone half played, as soon as somebody is
heard. The console line still tells the user of every alert; the tone only draws attention.
"""

from __future__ import annotations

import enum
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
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


MAX_QUEUED_TONE_S: Final = 2.0
"""Tone waiting to play, at most; a tone that does not fit is dropped (the longest, the
emergency tone, is 1 s)."""
EMERGENCY_TONE_GAP_S: Final = 5.0
"""An emergency tone is accepted at most this often, whatever the alert: alerts inside the gap
are announced by the tone just played (their console lines name each one)."""
ALERT_RETONE_S: Final = 30.0
"""An alert already announced is not announced again for this long: the server sends an active
alert again when it is updated (a new press, a new location)."""
_ALERTS_REMEMBERED: Final = 256


@dataclass
class ToneStats:
    """What the queue did with the tones it was offered."""

    accepted: Counter[Tone] = field(default_factory=Counter)
    coalesced: int = 0
    """Emergency tones not queued: that alert, or another one just now, was announced."""
    over_cap: int = 0
    """Tones not queued because the queue was full."""
    cut_frames: int = 0
    """Queued tone frames dropped because voice was heard."""
    played_frames: int = 0
    most_queued_s: float = 0.0


class ToneQueue:
    """Tones waiting to play: coalesced, bounded, and always behind voice. Time is passed in."""

    def __init__(
        self,
        frame_ms: int = 20,
        *,
        max_queued_s: float = MAX_QUEUED_TONE_S,
        emergency_gap_s: float = EMERGENCY_TONE_GAP_S,
        alert_retone_s: float = ALERT_RETONE_S,
    ) -> None:
        self.frame_ms = frame_ms
        self.max_queued_s = max_queued_s
        self.emergency_gap_s = emergency_gap_s
        self.alert_retone_s = alert_retone_s
        self._frames: deque[tuple[Tone, Pcm]] = deque()
        self._last_emergency: float | None = None
        self._alerts: OrderedDict[bytes, float] = OrderedDict()
        """Alert id -> when it was last announced (or coalesced into an announcement)."""
        self.stats = ToneStats()

    @property
    def queued_s(self) -> float:
        """Seconds of tone waiting (the rest of the one playing included)."""
        return len(self._frames) * self.frame_ms / 1000

    def add(self, kind: Tone, now: float, alert_id: bytes | None = None) -> bool:
        """Queue ``kind`` (``alert_id``: the alert an emergency tone is for); False if dropped."""
        if kind is Tone.EMERGENCY and not self._emergency_wanted(now, alert_id):
            self.stats.coalesced += 1
            return False
        frames = tone_frames(kind, self.frame_ms)
        if self.queued_s + len(frames) * self.frame_ms / 1000 > self.max_queued_s:
            self.stats.over_cap += 1
            return False
        self._frames.extend((kind, frame) for frame in frames)
        if kind is Tone.EMERGENCY:
            self._last_emergency = now
        self.stats.accepted[kind] += 1
        self.stats.most_queued_s = max(self.stats.most_queued_s, self.queued_s)
        return True

    def _emergency_wanted(self, now: float, alert_id: bytes | None) -> bool:
        while self._alerts and (
            len(self._alerts) > _ALERTS_REMEMBERED
            or now - next(iter(self._alerts.values())) >= self.alert_retone_s
        ):
            self._alerts.popitem(last=False)
        known = alert_id is not None and alert_id in self._alerts
        if alert_id is not None:
            # Announced now, or by the tone this one is coalesced into.
            self._alerts[alert_id] = now if not known else self._alerts[alert_id]
        if known:
            return False
        if any(kind is Tone.EMERGENCY for kind, _ in self._frames):
            return False
        gap_over = (
            self._last_emergency is None or now - self._last_emergency >= self.emergency_gap_s
        )
        return gap_over

    def next_frame(self) -> Pcm | None:
        """The next tone frame to play, or None when no tone is waiting."""
        if not self._frames:
            return None
        self.stats.played_frames += 1
        return self._frames.popleft()[1]

    def give_way_to_voice(self) -> int:
        """Somebody is heard: drop every queued tone frame; returns how many."""
        dropped = len(self._frames)
        self._frames.clear()
        self.stats.cut_frames += dropped
        return dropped
