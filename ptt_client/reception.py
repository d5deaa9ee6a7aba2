"""What this radio receives: repeats folded back into single frames, and its downlink measured
for receiver reports. Pure: bytes and times in.

A redundant datagram (:mod:`ptt_protocol.repeats`) carries earlier frames of the burst besides
its own. :meth:`Reception.split` turns it into plain inner frames, oldest first, and drops
every frame whose (channel, burst, sequence) this radio already took: a repeat is used only
for a frame that has not arrived, is never opened twice and never plays twice. A frame
counts as taken once the key ring accepted it (:meth:`Reception.taken`), so a forged copy
that failed to open does not shadow the real one.

For feedback (``control.ReceiverReport``), it keeps the RFC 3550 jitter of each channel's
voice frames and, from the hop layer's counters, the loss on the way down since the last
report; :meth:`Reception.reports_due` gives at most one report per channel per
:data:`REPORT_INTERVAL`, and only for channels heard in the last second.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final

from ptt_client import events
from ptt_client.e2e import Keyring
from ptt_protocol import control, media, repeats
from ptt_protocol.errors import ProtocolError
from ptt_protocol.media import HopSession

__all__ = ["RECEIVING_WINDOW", "REPORT_INTERVAL", "Reception", "Split"]

REPORT_INTERVAL: Final = 1.0
"""Seconds between two receiver reports on one channel (the relay refuses them closer
than half of this)."""
RECEIVING_WINDOW: Final = 1.0
"""A channel counts as being received if a voice frame came within this many seconds."""
_BURSTS_KEPT: Final = 32
_HELD_KEPT: Final = 200
"""At most this many held frames are remembered (the key ring holds 50)."""
_FRAME_S: Final = 0.020
_TAKEN_WINDOW: Final = 64
"""Frames behind the newest taken one that are still told apart (a repeat reaches 8)."""
_STATEMENTS_FROM: Final = 1 << 31
"""Burst statements are numbered from here (``ptt_client.talk_frames``): not voice."""


@dataclass(frozen=True, slots=True)
class Split:
    """A received inner frame as the frames to open: ``(inner, is_repeat)``, oldest first."""

    reach: int
    frames: tuple[tuple[bytes, bool], ...]


@dataclass(slots=True)
class _Heard:
    last_frame: float
    burst_id: int = -1
    jitter_s: float = 0.0
    last_transit: float | None = None
    last_report: float = float("-inf")


class _Taken:
    """The frames of one burst already taken, in a window behind the newest of each kind
    (voice, statements): repeats reach at most 8 frames back, so older copies are dropped
    as duplicates too, and memory stays bounded whatever a relay sends."""

    __slots__ = ("_seen", "_top")

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._top = [-1, -1]  # newest voice sequence, newest statement sequence

    def has(self, sequence: int) -> bool:
        return sequence in self._seen or self._aged(sequence)

    def add(self, sequence: int) -> None:
        kind = int(sequence >= _STATEMENTS_FROM)
        self._top[kind] = max(self._top[kind], sequence)
        self._seen.add(sequence)
        if len(self._seen) > 4 * _TAKEN_WINDOW:
            self._seen = {s for s in self._seen if not self._aged(s)}

    def _aged(self, sequence: int) -> bool:
        return sequence < self._top[sequence >= _STATEMENTS_FROM] - _TAKEN_WINDOW


class Reception:
    """De-duplication of repeats and the downlink figures of one radio."""

    def __init__(self) -> None:
        self._taken: OrderedDict[tuple[int, int], _Taken] = OrderedDict()
        """Per (channel, burst), most recently used last: the frames already taken."""
        self._heard: dict[int, _Heard] = {}
        self._baseline: tuple[HopSession, tuple[int, int]] | None = None
        """The hop session of this login and its counters at the last report."""
        self.duplicates = 0
        """Frames dropped because that frame was already taken (the repeats of frames that
        arrived, or a primary that its repeat overtook)."""
        self.rescued = 0
        """Frames taken from a repeat: their own datagram was lost or late."""
        self._held: OrderedDict[tuple[int, int, int], tuple[bool, int]] = OrderedDict()
        """(is repeat, reach) of frames the key ring holds until their FloorTaken arrives."""

    def split(self, inner: bytes) -> Split:
        """The frames of ``inner`` still to open. Raises ``ProtocolError`` when malformed."""
        frame = media.unpack_inner(inner)
        exploded = repeats.explode(frame)
        key = (frame.channel_id, frame.burst_id)
        taken = self._taken.get(key)
        if taken is None:
            return Split(exploded.reach, exploded.frames)
        self._taken.move_to_end(key)
        fresh = []
        for plain, is_repeat in exploded.frames:
            sequence = media.INNER_HEADER.unpack_from(plain)[2]
            if taken.has(sequence):
                self.duplicates += 1
            else:
                fresh.append((plain, is_repeat))
        return Split(exploded.reach, tuple(fresh))

    def open(
        self, keyring: Keyring, inner: bytes, now: float, floors: dict[int, Any]
    ) -> list[object]:
        """Every frame ``inner`` carries that this radio has not taken yet, opened by the key
        ring; returns the events to report (VoiceFrames say whether they came as repeats)."""
        try:
            split = self.split(inner)
        except ProtocolError as exc:
            return [events.VoiceRejected(0, f"malformed media frame: {exc}")]
        reported: list[object] = []
        for plain, is_repeat in split.frames:
            found = keyring.open_media(plain, now, floors)
            channel_id, burst_id, sequence, _ = media.INNER_HEADER.unpack_from(plain)
            if any(isinstance(e, _AUTHENTICATED) for e in found):
                # Only what opened counts as taken: a forged copy never shadows the real one.
                self.taken(channel_id, burst_id, sequence, is_repeat, now)
            elif not any(isinstance(e, events.VoiceRejected) for e in found):
                self.hold(plain, is_repeat, split.reach)  # early: waits for its FloorTaken
            reported.extend(_annotated(e, is_repeat, split.reach) for e in found)
        return reported

    def early_frames_opened(self, found: list[object], now: float) -> list[object]:
        """Frames the key ring held until their FloorTaken, with how they came; the ones
        that opened are taken from now on."""
        out: list[object] = []
        for event in found:
            if isinstance(event, events.VoiceFrame):
                key = (event.channel_id, event.burst_id, event.sequence)
                is_repeat, reach = self.unheld(*key)
                self.taken(*key, is_repeat, now)
                event = _annotated(event, is_repeat, reach)
            out.append(event)
        return out

    def new_session(self) -> None:
        """A new login: the relay may have restarted and burst ids start again, so nothing
        taken or held under the old ones may shadow a new burst."""
        self._taken.clear()
        self._held.clear()
        for heard in self._heard.values():
            heard.burst_id, heard.last_transit = -1, None

    def hold(self, plain: bytes, is_repeat: bool, reach: int) -> None:
        """The key ring keeps ``plain`` until floor control names its burst: remember how it
        came, for when it is opened (:meth:`unheld`)."""
        channel_id, burst_id, sequence, _ = media.INNER_HEADER.unpack_from(plain)
        self._held[(channel_id, burst_id, sequence)] = (is_repeat, reach)
        while len(self._held) > _HELD_KEPT:
            self._held.popitem(last=False)

    def unheld(self, channel_id: int, burst_id: int, sequence: int) -> tuple[bool, int]:
        """(is repeat, reach) of a held frame the key ring just opened."""
        return self._held.pop((channel_id, burst_id, sequence), (False, 0))

    def taken(
        self, channel_id: int, burst_id: int, sequence: int, is_repeat: bool, now: float
    ) -> None:
        """The key ring accepted frame ``sequence``: later copies are duplicates."""
        key = (channel_id, burst_id)
        taken = self._taken.get(key)
        if taken is None:
            taken = self._taken[key] = _Taken()
            while len(self._taken) > _BURSTS_KEPT:
                self._taken.popitem(last=False)  # the least recently used burst
        else:
            self._taken.move_to_end(key)
        taken.add(sequence)
        if is_repeat:
            self.rescued += 1
            return
        if sequence >= _STATEMENTS_FROM:
            return  # a burst statement: neither voice being heard nor jitter
        heard = self._heard.get(channel_id)
        if heard is None:
            heard = self._heard[channel_id] = _Heard(now)
        heard.last_frame = now
        if heard.burst_id != burst_id:
            # Sequences carry on across bursts, time does not: never measure the pause.
            heard.burst_id = burst_id
            heard.last_transit = None
        # RFC 3550 6.4.1 over the voice frames' own 20 ms spacing.
        transit = now - sequence * _FRAME_S
        if heard.last_transit is not None:
            heard.jitter_s += (abs(transit - heard.last_transit) - heard.jitter_s) / 16.0
        heard.last_transit = transit

    def reports_due(self, hop: HopSession | None, now: float) -> list[control.ReceiverReport]:
        """Receiver reports to send now (one per channel being received, at most one per
        :data:`REPORT_INTERVAL`)."""
        if hop is None:
            return []
        base = self._baseline
        if base is None or base[0] is not hop:
            self._baseline = (hop, hop.link_mark)
            return []
        due = [
            (channel_id, heard)
            for channel_id, heard in self._heard.items()
            if now - heard.last_frame <= RECEIVING_WINDOW
            and now - heard.last_report >= REPORT_INTERVAL
        ]
        if not due:
            if all(now - h.last_frame > RECEIVING_WINDOW for h in self._heard.values()):
                # Nothing heard: the next report covers the next reception, not the quiet
                # (keepalives lost minutes ago say nothing about the path now).
                self._baseline = (hop, hop.link_mark)
            return []
        loss = hop.loss_pct_since(base[1])
        self._baseline = (hop, hop.link_mark)
        run = control.mean_loss_run(hop.lost, hop.loss_runs)  # the link's, since login
        reports = []
        for channel_id, heard in due:
            heard.last_report = now
            reports.append(
                control.ReceiverReport(
                    channel_id=channel_id,
                    loss_pct=loss,
                    jitter_ms=min(control.MAX_JITTER_MS, heard.jitter_s * 1000.0),
                    loss_run=run,
                )
            )
        return reports


def _annotated(event: object, is_repeat: bool, reach: int) -> object:
    """A VoiceFrame with how it came (from a repeat; the talker's reach)."""
    if isinstance(event, events.VoiceFrame) and (is_repeat or reach):
        return dataclasses.replace(event, repeat=is_repeat, reach=reach)
    return event


_AUTHENTICATED: Final = (events.VoiceFrame, events.TalkerVerified, events.ForgedAudio)
"""What the key ring reports only for a frame that opened (or a statement that verified)."""
