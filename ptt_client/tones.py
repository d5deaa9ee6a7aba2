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
the next call): emergency tones are coalesced (at most one per raiser every
:data:`ALERT_RETONE_S`, never two waiting), the queue holds at most :data:`MAX_QUEUED_TONE_S`
of tone, and tones give way to voice: the player drops what is queued, even a tone half
played, as soon as somebody is heard (an emergency tone cut so plays once after the voice).
The console line still tells the user of every alert; the tone draws attention, and every
officer's first alert gets one.
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
emergency tone, is 1 s), except an emergency tone, for which other tones make room."""
ALERT_RETONE_S: Final = 30.0
"""An officer whose alert was announced is not announced again for this long, whatever id
their alerts carry: the server sends an active alert again when it is updated (a new press, a
new location), and an officer raising, cancelling and raising again makes a new alert each
time."""
_RAISERS_REMEMBERED: Final = 256


@dataclass
class ToneStats:
    """What the queue did with the tones it was offered."""

    accepted: Counter[Tone] = field(default_factory=Counter)
    coalesced: int = 0
    """Emergency tones not queued: that officer was announced just now, or the emergency tone
    waiting to start announces them."""
    over_cap: int = 0
    """Tones not queued because the queue was full."""
    cut_frames: int = 0
    """Queued tone frames dropped because voice was heard."""
    played_frames: int = 0
    owed: int = 0
    """Emergency tones played again after voice cut them."""
    most_queued_s: float = 0.0


class ToneQueue:
    """Tones waiting to play: coalesced, bounded, and always behind voice. Time is passed in.

    Emergency tones are coalesced per raiser, never across raisers: the first alert of an
    officer not heard of for :data:`ALERT_RETONE_S` always gets a tone, or is announced by the
    emergency tone waiting to start. Issue 9's red team: with one gap for all alerts,
    an officer raising and cancelling alerts once a second kept the gap closed, and another
    officer's genuine emergency got no tone at all. What bounds the tones is that at most one
    emergency tone waits at a time and each raiser gets at most one per
    :data:`ALERT_RETONE_S` (so one plays and one waits at most). Voice still cuts every tone; an emergency tone cut is *owed* and
    plays once when nobody is heard any more, so an alert that arrived during a call is
    announced after it.
    """

    def __init__(
        self,
        frame_ms: int = 20,
        *,
        max_queued_s: float = MAX_QUEUED_TONE_S,
        alert_retone_s: float = ALERT_RETONE_S,
    ) -> None:
        self.frame_ms = frame_ms
        self.max_queued_s = max_queued_s
        self.alert_retone_s = alert_retone_s
        self._frames: deque[tuple[Tone, int, Pcm]] = deque()
        """(tone, frame index within the tone, frame)."""
        self._announced: OrderedDict[object, float] = OrderedDict()
        """Raiser (or alert id) -> when it was last announced (or coalesced into a tone)."""
        self._owed = False
        """Voice cut an emergency tone: it plays again once nobody is heard."""
        self.stats = ToneStats()

    @property
    def queued_s(self) -> float:
        """Seconds of tone waiting (the rest of the one playing included)."""
        return len(self._frames) * self.frame_ms / 1000

    def add(
        self,
        kind: Tone,
        now: float,
        alert_id: bytes | None = None,
        raiser: str | None = None,
    ) -> bool:
        """Queue ``kind``; False if dropped. For an emergency tone, ``raiser`` (the officer) or
        else ``alert_id`` says whom it announces."""
        if kind is Tone.EMERGENCY and not self._emergency_wanted(now, raiser or alert_id):
            self.stats.coalesced += 1
            return False
        frames = tone_frames(kind, self.frame_ms)
        room = self.max_queued_s - len(frames) * self.frame_ms / 1000
        if self.queued_s > room and kind is Tone.EMERGENCY:
            # An emergency outranks the floor's tones: they make room. An emergency tone
            # already playing finishes first.
            self._frames = deque(entry for entry in self._frames if entry[0] is Tone.EMERGENCY)
        if self.queued_s > room:
            self.stats.over_cap += 1
            return False
        self._frames.extend((kind, i, frame) for i, frame in enumerate(frames))
        self.stats.accepted[kind] += 1
        self.stats.most_queued_s = max(self.stats.most_queued_s, self.queued_s)
        return True

    def _emergency_wanted(self, now: float, whom: object) -> bool:
        while self._announced and (
            len(self._announced) > _RAISERS_REMEMBERED
            or now - next(iter(self._announced.values())) >= self.alert_retone_s
        ):
            self._announced.popitem(last=False)
        if whom is not None:
            if whom in self._announced:
                return False
            self._announced[whom] = now  # announced now, or by the tone this joins
        # A tone that has not started yet announces this alert too; one already playing
        # began before it, so the user would not know it is about a new alert.
        return not self._emergency_waiting() and not self._owed

    def _emergency_waiting(self) -> bool:
        return any(kind is Tone.EMERGENCY and i == 0 for kind, i, _ in self._frames)

    def next_frame(self) -> Pcm | None:
        """The next tone frame to play, or None when no tone is waiting."""
        if not self._frames and self._owed:
            self._owed = False
            self.stats.owed += 1
            self._frames.extend(
                (Tone.EMERGENCY, i, f) for i, f in enumerate(tone_frames(Tone.EMERGENCY))
            )
        if not self._frames:
            return None
        self.stats.played_frames += 1
        return self._frames.popleft()[2]

    def give_way_to_voice(self) -> int:
        """Somebody is heard: drop every queued tone frame; returns how many. An emergency
        tone among them is owed (:meth:`next_frame` plays it once voice has stopped)."""
        dropped = len(self._frames)
        if any(kind is Tone.EMERGENCY for kind, _, _ in self._frames):
            self._owed = True
        self._frames.clear()
        self.stats.cut_frames += dropped
        return dropped
