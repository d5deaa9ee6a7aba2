"""How a talker protects its voice, chosen from the loss its audience reports. Pure.

The relay tells the talker, about once a second while it holds the floor, what its uplink
loses and what covers most of its listeners' downlinks (``control.LinkReport``). A frame
reaches a listener only if both hops carry it, so the losses compound. From that figure and
the mean length of a loss run, :func:`choose` picks the :class:`Protection`:

- **Repeats** (RFC 2198 style, :mod:`ptt_protocol.repeats`): each datagram also carries
  earlier sealed frames of the burst. Random loss is beaten by the previous frame (distance
  1); bursty loss needs distances longer than the run it must jump, so the repeats reach
  further back. A listener waits ``reach`` frames longer before playing, so reach costs
  mouth-to-ear delay and is kept as short as the loss allows.
- **Nothing on a clean path**: below :data:`PROTECT_FROM_PCT` no repeat is sent, so clean
  speech pays no extra bytes and no extra delay.

:class:`ProtectionState` keeps the latest choice per channel, so the next burst starts from
the talker's history instead of unprotected, and forgets it after :data:`HISTORY_TTL`.
What the numbers supported (docs/design.md): repeats rather than Opus in-band FEC, which
libopus 1.3 pays for out of the voice bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ptt_protocol import control

__all__ = [
    "HISTORY_TTL",
    "NONE",
    "PROTECT_FROM_PCT",
    "REPORT_WINDOW",
    "Protection",
    "ProtectionState",
    "choose",
    "effective_loss",
]

PROTECT_FROM_PCT: Final = 1.0
"""Effective loss (percent) from which repeats are sent."""
DEPTH_TWO_FROM_PCT: Final = 2.0
"""From this loss one repeat leaves too much (about loss^2) unrecovered: send two. PESQ-WB
punishes a single concealed frame in a two-second call by about 0.3 (measured: three
concealed frames in 101 took 3.85 to 2.88), so the residual must stay near zero."""
BURSTY_RUN: Final = 1.5
"""A mean loss run at least this long is bursty: repeats must jump the run."""
REPORT_WINDOW: Final = 5.0
"""Seconds of reports the choice looks back over (the worst of them counts)."""
HISTORY_TTL: Final = 300.0
"""Seconds a channel's last protection is kept for the next burst."""


@dataclass(frozen=True, slots=True)
class Protection:
    """What the talker adds to each voice datagram."""

    distances: tuple[int, ...] = ()
    """How many frames back each repeat is (increasing); empty: no repeats."""
    loss_pct: float = 0.0
    """The effective loss the choice was made for (also the Opus loss hint)."""

    @property
    def reach(self) -> int:
        """The farthest repeat, in frames (0: none)."""
        return self.distances[-1] if self.distances else 0


NONE: Final = Protection()


def effective_loss(report: control.LinkReport) -> tuple[float, float]:
    """(percent, mean loss run) a listener covered by the report loses end to end."""
    up, down = report.uplink_loss_pct / 100.0, report.audience_loss_pct / 100.0
    loss = 1.0 - (1.0 - up) * (1.0 - down)
    weight = up + down
    run = (
        (report.uplink_loss_run * up + report.audience_loss_run * down) / weight if weight else 1.0
    )
    return 100.0 * loss, run


def choose(loss_pct: float, loss_run: float) -> Protection:
    """The protection for ``loss_pct`` end-to-end loss in runs of ``loss_run`` datagrams."""
    if loss_pct < PROTECT_FROM_PCT:
        return Protection(loss_pct=loss_pct)
    if loss_run >= BURSTY_RUN:
        # A repeat inside the same loss run is lost with it: reach past the mean run.
        first = min(3, max(2, round(loss_run)))
        return Protection((first, 2 * first), loss_pct)
    if loss_pct < DEPTH_TWO_FROM_PCT:
        return Protection((1,), loss_pct)
    return Protection((1, 2), loss_pct)


class ProtectionState:
    """The protection in force per channel (pure: time is passed in).

    Chosen from the worst report of the last :data:`REPORT_WINDOW` seconds, not the latest
    alone: bursty loss leaves whole seconds clean between its runs, and the relay's first
    report of a burst rests on a few datagrams. So one clean second does not switch
    protection off in the middle of a run of bad ones; a path that stays clean for the
    window does. The last choice is kept for the next burst for :data:`HISTORY_TTL`.
    """

    def __init__(self) -> None:
        self._reports: dict[int, list[tuple[float, float, float]]] = {}
        self._chosen: dict[int, tuple[Protection, float]] = {}

    def report(self, report: control.LinkReport, now: float) -> Protection | None:
        """Take a LinkReport; returns the new protection if it changed, else None."""
        loss, run = effective_loss(report)
        recent = [
            r for r in self._reports.get(report.channel_id, []) if now - r[0] <= REPORT_WINDOW
        ]
        recent.append((now, loss, run))
        self._reports[report.channel_id] = recent
        worst = max(recent, key=lambda r: r[1])
        bursty = max(r[2] for r in recent if r[1] > 0) if any(r[1] > 0 for r in recent) else 1.0
        chosen = choose(worst[1], bursty)
        previous = self._chosen.get(report.channel_id)
        self._chosen[report.channel_id] = (chosen, now)
        if previous is not None and now - previous[1] > HISTORY_TTL:
            previous = None  # forgotten: the radio was sending without repeats
        if previous is None:
            return chosen if chosen.distances else None
        return chosen if chosen.distances != previous[0].distances else None

    def for_channel(self, channel_id: int, now: float) -> Protection:
        """What to send with on ``channel_id`` now (the last choice, unless it is too old)."""
        held = self._chosen.get(channel_id)
        if held is None or now - held[1] > HISTORY_TTL:
            return NONE
        return held[0]
