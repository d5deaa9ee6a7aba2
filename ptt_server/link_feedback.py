"""Loss feedback for talkers: the talker's uplink as the relay measures it, and what its
audience reports, folded into one :class:`~ptt_protocol.control.LinkReport`. Pure: time in.

The uplink figure comes from the hop layer's counters of the talker's session
(:class:`ptt_protocol.media.HopSession` keeps ``received``, ``lost`` and ``loss_runs``, a few
integer operations per datagram it already authenticates), taken as differences since the
floor was granted; the jitter is RFC 3550's estimate over the talker's voice frames (their
sequence numbers are 20 ms apart), fed from the relay's hot path with no allocation.

The first report of a burst comes :data:`FIRST_REPORT_AFTER` after the grant, at once if the
channel's audience lost datagrams within the last minute, and as soon as the uplink loses
a datagram while the talker's last report said it was clean (the relay's hot path
compares one counter): protection
starts within a frame or two of the first loss, not a second later.

The audience figure is the :data:`PERCENTILE`-th percentile (nearest rank, and never the
single worst of two or more reports: :func:`audience_rank`) of what the channel's listeners
reported in the last :data:`REPORT_TTL` seconds, loss, jitter and loss run each on its own,
capped: most of the audience is protected, and one listener in a basement (or one that
lies) does not make everyone pay its bitrate. The talker learns the figure only: no identities,
no addresses, no count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ptt_protocol import control
from ptt_protocol.media import HopSession

__all__ = [
    "AUDIENCE_JITTER_CAP_MS",
    "AUDIENCE_LOSS_CAP",
    "AUDIENCE_LOSS_RUN_CAP",
    "FIRST_REPORT_AFTER",
    "MIN_REPORT_INTERVAL",
    "PERCENTILE",
    "REPORT_INTERVAL",
    "REPORT_TTL",
    "ChannelFeedback",
    "ReportRefused",
    "audience_rank",
]

REPORT_INTERVAL: Final = 1.0
"""Seconds between two LinkReports to a talker."""
FIRST_REPORT_AFTER: Final = 0.5
"""The first report of a burst comes sooner: protection should start early in the burst."""
MIN_REPORT_INTERVAL: Final = 0.5
"""A listener's receiver reports on one channel closer together than this are refused."""
REPORT_TTL: Final = 3.0
"""A listener's report counts for this long (listeners report about once a second)."""
PERCENTILE: Final = 90
AUDIENCE_LOSS_CAP: Final = 20.0
"""Percent: the most loss the audience figure ever claims."""
AUDIENCE_LOSS_RUN_CAP: Final = 4.0
"""The longest mean loss run the audience figure claims (repeats reach 6 frames at most)."""
AUDIENCE_JITTER_CAP_MS: Final = 500.0
HISTORY_TTL: Final = 60.0
"""A burst starts from the audience's figure of the last minute, if there is one."""
_FRAME_S: Final = 0.020


class ReportRefused(ValueError):
    """A receiver report that is not accepted (too frequent); nothing changed."""


@dataclass(slots=True)
class _Heard:
    loss_pct: float
    jitter_ms: float
    loss_run: float
    at: float


def audience_rank(reports: int) -> int:
    """Which report (0-based, in increasing order) stands for the audience: the nearest-rank
    :data:`PERCENTILE`-th percentile, but never the single worst of two or more. On a small
    channel the 90th percentile *is* the worst report, and one radio (broken, or lying)
    would set every talker's protection, and tell them its figures."""
    rank = max(0, math.ceil(PERCENTILE / 100 * reports) - 1)
    return min(rank, reports - 2) if reports >= 2 else 0


class ChannelFeedback:
    """One channel's link feedback: its talker's uplink and its listeners' reports."""

    __slots__ = (
        "_audience",
        "_baseline",
        "_jitter_s",
        "_last_transit",
        "_talker",
        "lost_when_clean",
        "next_report",
        "remembered",
        "watching",
    )

    def __init__(self) -> None:
        self._audience: dict[int, _Heard] = {}
        self._talker: int | None = None
        self._baseline = (0, 0)
        """The holder's hop counters at the grant (``HopSession.link_mark``)."""
        self._jitter_s = 0.0
        self._last_transit: float | None = None
        self.next_report: float | None = None
        """When the holder's next LinkReport is due (None: nobody holds the floor)."""
        self.remembered: tuple[float, float, float, float] | None = None
        """(loss %, jitter ms, loss run, when) of the last audience figure, for new bursts."""
        self.watching = False
        """The talker was last told its uplink is clean (or nothing yet in this burst): the
        next uplink loss triggers a report at once."""
        self.lost_when_clean = 0
        """The holder's hop ``lost`` counter when :attr:`watching` began (the hot path
        compares it)."""

    # --- the talker ------------------------------------------------------------------------

    def talk_started(self, talker: int, hop: HopSession, now: float) -> None:
        """Session ``talker`` was granted the floor: measure its uplink from here."""
        self._talker = talker
        self._baseline = hop.link_mark
        self._jitter_s = 0.0
        self._last_transit = None
        self.lost_when_clean = hop.lost
        self.watching = True
        # The audience lost datagrams a moment ago: the talker protects from its first frame.
        remembered = self.remembered
        recent = remembered is not None and now - remembered[3] <= HISTORY_TTL
        lossy = recent and remembered is not None and remembered[0] > 0
        self.next_report = now if lossy else now + FIRST_REPORT_AFTER

    def talk_ended(self) -> None:
        self._talker = None
        self.next_report = None
        self.watching = False

    def voice_frame(self, sequence: int, now: float) -> None:
        """A voice frame of the holder arrived (hot path): RFC 3550 6.4.1 jitter."""
        transit = now - sequence * _FRAME_S
        last = self._last_transit
        if last is not None:
            self._jitter_s += (abs(transit - last) - self._jitter_s) / 16.0
        self._last_transit = transit

    def report(self, channel_id: int, hop: HopSession, now: float) -> control.LinkReport:
        """The holder's LinkReport now; the next one is due :data:`REPORT_INTERVAL` later."""
        self.next_report = now + REPORT_INTERVAL
        up_loss = hop.loss_pct_since(self._baseline)
        # Burstiness is a property of the link, and needs runs to show: over the whole
        # session, not the burst (a pair of losses in a row is chance on a random path).
        up_run = control.mean_loss_run(hop.lost, hop.loss_runs)
        loss, jitter, run = self.audience(now)
        # Told "clean": the next loss must not wait for the next report.
        self.watching = up_loss == 0
        self.lost_when_clean = hop.lost
        return control.LinkReport(
            channel_id=channel_id,
            uplink_loss_pct=up_loss,
            uplink_jitter_ms=min(control.MAX_JITTER_MS, self._jitter_s * 1000.0),
            uplink_loss_run=up_run,
            audience_loss_pct=loss,
            audience_jitter_ms=jitter,
            audience_loss_run=run,
        )

    # --- the audience ----------------------------------------------------------------------

    def receiver_report(self, listener: int, report: control.ReceiverReport, now: float) -> None:
        """Keep a listener's report. Raises :class:`ReportRefused` when it comes too soon."""
        previous = self._audience.get(listener)
        if previous is not None and now - previous.at < MIN_REPORT_INTERVAL:
            raise ReportRefused(
                f"receiver reports at most every {MIN_REPORT_INTERVAL:g} s per channel"
            )
        self._audience[listener] = _Heard(report.loss_pct, report.jitter_ms, report.loss_run, now)

    def forget(self, listener: int) -> None:
        """A listener left the channel (or logged out): its report no longer counts."""
        self._audience.pop(listener, None)

    def audience(self, now: float) -> tuple[float, float, float]:
        """(loss %, jitter ms, mean loss run) that covers most of the current audience."""
        fresh = [
            h
            for key, h in self._audience.items()
            if key != self._talker and now - h.at <= REPORT_TTL
        ]
        for key in [k for k, h in self._audience.items() if now - h.at > REPORT_TTL]:
            del self._audience[key]
        if not fresh:
            remembered = self.remembered
            if remembered is not None and now - remembered[3] <= HISTORY_TTL:
                return remembered[:3]
            return 0.0, 0.0, 1.0
        rank = audience_rank(len(fresh))
        figure = sorted(fresh, key=lambda h: h.loss_pct)[rank]
        jitter = sorted(h.jitter_ms for h in fresh)[rank]
        run = sorted(h.loss_run for h in fresh)[rank]
        result = (
            min(AUDIENCE_LOSS_CAP, figure.loss_pct),
            min(AUDIENCE_JITTER_CAP_MS, jitter),
            min(AUDIENCE_LOSS_RUN_CAP, run),
        )
        self.remembered = (*result, now)
        return result
