"""Link feedback: how lossy the voice path is, so a talker protects what its audience loses.

WebRTC's RTCP receiver reports, for a relay that cannot open the media. Listeners report their
own downlink (:class:`ReceiverReport`, at most about once a second, only while they receive);
the relay measures each talker's uplink from the hop counters it already authenticates, folds
in what the channel's listeners reported, and tells the talker one figure
(:class:`LinkReport`, about once a second while it holds the floor). The talker never learns
who reported what: no listener identity, no address, only the channel's figure.

Every field is bounded by the decoder: a negative, not-a-number or over-100 % loss, a jitter
beyond 10 s or a loss run shorter than one datagram does not decode and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from ptt_protocol.control_types import ChannelId, _Message

__all__ = [
    "MAX_JITTER_MS",
    "MAX_LOSS_RUN",
    "MIN_RUNS_FOR_A_MEAN",
    "JitterMs",
    "LinkReport",
    "LossPct",
    "LossRun",
    "ReceiverReport",
    "mean_loss_run",
]

MAX_JITTER_MS: Final = 10_000.0
MAX_LOSS_RUN: Final = 1000.0

LossPct = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
"""Percent of datagrams lost."""
JitterMs = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_JITTER_MS)]
"""Interarrival jitter (RFC 3550 6.4.1), milliseconds."""
LossRun = Annotated[float, msgspec.Meta(ge=1.0, le=MAX_LOSS_RUN)]
"""Mean length of a run of consecutive lost datagrams (1: losses come alone)."""


class ReceiverReport(_Message, frozen=True, kw_only=True):
    """Client -> server: my downlink while I receive this channel (loss measured from the hop
    layer's counters, jitter from the voice frames' arrival times)."""

    channel_id: ChannelId
    """The channel being received."""
    loss_pct: LossPct
    """Datagrams lost on the way down since the last report."""
    jitter_ms: JitterMs
    """Interarrival jitter of the voice frames."""
    loss_run: LossRun = 1.0
    """Mean run of consecutive losses (1: they come alone; more: bursty)."""


class LinkReport(_Message, frozen=True, kw_only=True):
    """Server -> talker: what the path from this talker to its audience loses.

    ``uplink_*`` is the talker's own uplink as the relay measured it; ``audience_*`` the
    figure that covers most of the channel's listeners' downlinks (a high percentile, capped,
    so one broken listener does not inflate everyone's bitrate). Loss on the two hops adds up.
    """

    channel_id: ChannelId
    """The channel the talker holds the floor on."""
    uplink_loss_pct: LossPct
    """Datagrams of this burst lost between the talker and the relay."""
    uplink_jitter_ms: JitterMs
    """Interarrival jitter of the talker's voice frames at the relay."""
    uplink_loss_run: LossRun = 1.0
    """Mean run of consecutive uplink losses."""
    audience_loss_pct: LossPct = 0.0
    """Loss that covers most of the listeners' downlinks."""
    audience_jitter_ms: JitterMs = 0.0
    """Jitter at the same percentile of the listeners."""
    audience_loss_run: LossRun = 1.0
    """Mean run of consecutive losses on those downlinks."""


MIN_RUNS_FOR_A_MEAN: Final = 3
"""Fewer runs of consecutive losses than this say nothing about burstiness: two losses in a
row happen by chance on a 5 % random path, and would make a talker reach far back."""


def mean_loss_run(lost: int, runs: int) -> float:
    """The mean loss run to report for ``lost`` datagrams lost in ``runs`` runs (1.0 until
    :data:`MIN_RUNS_FOR_A_MEAN` runs were seen), inside the wire bounds."""
    if runs < MIN_RUNS_FOR_A_MEAN:
        return 1.0
    return min(MAX_LOSS_RUN, max(1.0, lost / runs))
