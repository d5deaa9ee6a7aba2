"""The simulator's schedule, pure: who talks when, who raises an emergency, where officers
stand. The same arguments always give the same schedule (seeded)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CENTER",
    "EMERGENCY_TALK_S",
    "ScheduledEmergency",
    "ScheduledEvent",
    "ScheduledTalk",
    "make_schedule",
    "positions_for",
]

EMERGENCY_TALK_S: Final = 10.0
"""As ``ptt-radio``: the mic opens this long after an emergency alert."""

CENTER: Final = (48.8566, 2.3522)
"""Officers are placed within ~2 km of this point (Paris), seeded like the schedule."""


@dataclass(frozen=True, order=True)
class ScheduledTalk:
    """``officer`` presses PTT at ``at`` and says sample number ``sample``."""

    at: float
    officer: str
    sample: int
    duration: float


@dataclass(frozen=True, order=True)
class ScheduledEmergency:
    """``officer`` raises an emergency at ``at`` and talks at emergency priority."""

    at: float
    officer: str


ScheduledEvent = ScheduledTalk | ScheduledEmergency


def make_schedule(
    officers: Sequence[str],
    *,
    duration: float,
    talk_every: float,
    sample_durations: Sequence[float],
    seed: int = 0,
    emergency: tuple[str, float] | None = None,
    emergency_talk_s: float = EMERGENCY_TALK_S,
) -> list[ScheduledEvent]:
    """Who talks when, sorted by time; the same arguments always give the same schedule.

    Each officer starts at a random point of its first ``talk_every`` seconds, then waits an
    exponentially distributed pause (mean ``talk_every``) after each call before the next, so
    calls arrive like a Poisson process and sometimes collide, as on a real channel. No call
    runs past ``duration``. The emergency officer (if any) makes no other call from the alert
    until its emergency talk ends.
    """
    if duration <= 0 or not math.isfinite(duration):
        raise ValueError(f"duration must be a positive number of seconds, not {duration}")
    if talk_every <= 0 or not math.isfinite(talk_every):
        raise ValueError(f"talk_every must be a positive number of seconds, not {talk_every}")
    if not sample_durations or min(sample_durations) <= 0:
        raise ValueError("sample_durations must list at least one positive duration")
    if len(set(officers)) != len(officers):
        raise ValueError("officer names must be unique")
    quiet: tuple[str, float, float] | None = None
    schedule: list[ScheduledEvent] = []
    if emergency is not None:
        who, at = emergency
        if who not in officers:
            raise ValueError(f"emergency officer {who!r} is not one of the officers")
        if not 0 <= at < duration:
            raise ValueError(f"emergency time {at:g} is not within the {duration:g} s simulation")
        schedule.append(ScheduledEmergency(at, who))
        quiet = (who, at, at + emergency_talk_s)
    rng = random.Random(seed)
    for officer in officers:
        t = rng.uniform(0, talk_every)
        while True:
            sample = rng.randrange(len(sample_durations))
            length = sample_durations[sample]
            if t + length > duration:
                break
            overlaps_emergency = (
                quiet is not None and quiet[0] == officer and t < quiet[2] and t + length > quiet[1]
            )
            if not overlaps_emergency:
                schedule.append(ScheduledTalk(t, officer, sample, length))
            t += length + rng.expovariate(1 / talk_every)
    schedule.sort(key=lambda event: (event.at, event.officer))
    return schedule


def positions_for(officers: Sequence[str], seed: int) -> dict[str, tuple[float, float]]:
    """Seeded positions within ~2 km of :data:`CENTER`."""
    rng = random.Random(f"positions:{seed}")
    return {
        officer: (CENTER[0] + rng.uniform(-0.018, 0.018), CENTER[1] + rng.uniform(-0.027, 0.027))
        for officer in officers
    }
