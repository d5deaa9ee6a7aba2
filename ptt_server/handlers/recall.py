"""Instant recall: a channel's recorded bursts, still sealed, for its members.

Handlers take the server, the session, the message and ``now``; they raise
:class:`ptt_server.policy.Refused` to answer with an Error. Who may send each message is
decided before, by :data:`ptt_server.policy.RULES`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ptt_protocol import control
from ptt_server.handlers import channels
from ptt_server.policy import Refused
from ptt_server.sessions import (
    Session,
)

if TYPE_CHECKING:
    from ptt_server.server import RelayServer

log = logging.getLogger("ptt_server")

RECALL_MAX_FRAMES = 6000
"""Frames one RecallFrames request returns at most: two minutes of 20 ms frames."""

RECALL_CHUNK = 40
"""Recorded frames per RecallFrames message: well under the 64 KiB frame limit."""


async def on_recall_list(
    server: RelayServer, session: Session, msg: control.RecallList, now: float
) -> None:
    channels.channel_for(server, session, msg.channel_id)
    bursts = await server.store.recent_bursts(msg.channel_id, msg.limit)
    session.send(
        control.RecallList(
            channel_id=msg.channel_id,
            limit=msg.limit,
            bursts=tuple(
                control.BurstInfo(
                    burst_key=b.burst_key,
                    burst_id=b.burst_id,
                    talker=b.talker,
                    priority=b.priority,
                    started_at=b.started_at,
                    duration=b.duration or 0.0,
                    frame_count=b.frame_count,
                    broadcast=b.broadcast,
                )
                for b in bursts
            ),
        )
    )


async def on_recall_frames(
    server: RelayServer, session: Session, msg: control.RecallFrames, now: float
) -> None:
    channels.channel_for(server, session, msg.channel_id)
    burst = await server.store.get_burst(msg.channel_id, msg.burst_key)
    if burst is None:
        raise Refused(control.ERROR_NOT_FOUND, "no such recording on this channel")
    # Bounded: the longest burst the floor allows is minutes; a larger recording is
    # sent up to RECALL_MAX_FRAMES, so one request cannot fill the session's queue.
    frames = (await server.store.burst_frames(msg.burst_key))[:RECALL_MAX_FRAMES]
    chunk = RECALL_CHUNK
    for start in range(0, max(len(frames), 1), chunk):
        part = frames[start : start + chunk]
        session.send(
            control.RecallFrames(
                channel_id=msg.channel_id,
                burst_key=msg.burst_key,
                frames=tuple(
                    control.RecalledFrame(sequence=f.seq, flags=f.flags, frame=f.frame)
                    for f in part
                ),
                last=start + chunk >= len(frames),
            )
        )
