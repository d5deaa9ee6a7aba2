"""A dispatcher's broadcast group call (3GPP TS 22.179 6.2.3), the radio's side, without I/O.

A broadcast takes the floor of several channels at once, one way: one
``BroadcastRequest`` names them all, and each channel answers as for a Floor Request
(FloorGranted, or FloorDeny while an emergency or an imminent peril holds it). The server
checks the whole call first, so when it refuses (an officer asking, a channel the
dispatcher is not on) it answers with one ``Error`` and no channel answers at all.

:func:`check_broadcast` checks a call before it goes out; :class:`BroadcastAnswers`
gathers what came back up to the round trip that follows the request (the server answers
in order: everything it sent before its Pong has arrived), and tells a refusal from an
accepted call by whether any channel answered.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ptt_client.errors import BroadcastRefused, ClientError
from ptt_client.floor_view import ChannelFloor, FloorView
from ptt_client.session_effects import Effect, Send
from ptt_protocol import control

__all__ = [
    "BroadcastAnswers",
    "BroadcastFloors",
    "BroadcastOutcome",
    "BroadcastRefused",
    "check_broadcast",
]

BROADCAST_PRIORITY: Final = 2
"""A broadcast is a dispatcher's call: its floors are asked for at the dispatcher's level."""


class BroadcastFloors:
    """The session core's broadcast (a mixin of ``ClientSessionCore``, whose floors it
    presses and releases)."""

    broadcasting: tuple[int, ...]
    """The channels of this radio's broadcast group call while its key is down."""
    floors: dict[int, FloorView]

    if TYPE_CHECKING:  # the session core's own

        def _floor(self, channel_id: int) -> ChannelFloor: ...

        def release(self, channel_id: int) -> list[Effect]: ...

    def broadcast(self, channel_ids: tuple[int, ...]) -> list[Effect]:
        """PTT down for a broadcast group call: one BroadcastRequest for every channel, whose
        floor participants then wait for their own channel's answer."""
        for channel_id in channel_ids:
            floor = self._floor(channel_id)
            floor.press(BROADCAST_PRIORITY, broadcast=True)
            self.floors[channel_id] = floor.view
        self.broadcasting = channel_ids
        return [Send(control.BroadcastRequest(channel_ids=channel_ids))]

    def end_broadcast(self) -> list[Effect]:
        """PTT up on the broadcast: each channel's burst ends (or its request is withdrawn)."""
        channels, self.broadcasting = self.broadcasting, ()
        return [effect for channel_id in channels for effect in self.release(channel_id)]


@dataclass(frozen=True)
class BroadcastOutcome:
    """How each channel of a broadcast answered."""

    granted: tuple[int, ...]
    """Channels whose floor the broadcast holds: voice goes to these."""
    denied: dict[int, str] = field(default_factory=dict)
    """Channels that refused it, with the cause (an emergency holds the floor, say)."""


def check_broadcast(
    channel_ids: Sequence[int],
    affiliated: Collection[int],
    keys_down: Collection[int],
    broadcasting: Collection[int] = (),
) -> tuple[int, ...]:
    """The channels of a broadcast, checked as the server will (and none on already);
    raises :class:`ClientError` saying what to change."""
    if broadcasting:
        raise ClientError("a broadcast is on already: end it first")
    wanted = tuple(channel_ids)
    if not wanted:
        raise ClientError("name at least one channel to broadcast to")
    if len(wanted) > control.MAX_PATCHED:
        raise ClientError(
            f"a broadcast reaches at most {control.MAX_PATCHED} channels, not {len(wanted)}:"
            " split it"
        )
    if len(set(wanted)) != len(wanted):
        raise ClientError("a channel is named twice in the broadcast")
    missing = [c for c in wanted if c not in affiliated]
    if missing:
        raise ClientError(f"affiliate to channel {missing[0]} before broadcasting to it")
    held = [c for c in wanted if c in keys_down]
    if held:
        raise ClientError(f"the transmit key is down on channel {held[0]}: let go of it first")
    return wanted


class BroadcastAnswers:
    """What the server answered to one BroadcastRequest (feed it every event)."""

    def __init__(self, channel_ids: Sequence[int]) -> None:
        self._channels = frozenset(channel_ids)
        self._order = tuple(channel_ids)
        self._granted: set[int] = set()
        self._denied: dict[int, str] = {}
        self._error: control.Error | None = None

    def hear(self, event: object) -> None:
        """One event from the client's stream."""
        if isinstance(event, control.FloorGranted) and event.channel_id in self._channels:
            self._granted.add(event.channel_id)
        elif isinstance(event, control.FloorDeny) and event.channel_id in self._channels:
            self._denied[event.channel_id] = event.cause
        elif isinstance(event, control.Error):
            self._error = event

    def outcome(self) -> BroadcastOutcome:
        """After the round trip: the channels' answers; raises :class:`BroadcastRefused` when
        no channel answered and the server sent an Error (an answered call was accepted, so
        an Error then was about something else)."""
        if not self._granted and not self._denied and self._error is not None:
            raise BroadcastRefused(self._error.code, self._error.text)
        return BroadcastOutcome(
            granted=tuple(c for c in self._order if c in self._granted),
            denied={c: self._denied[c] for c in self._order if c in self._denied},
        )
