"""What the officer sees: the status line (:class:`StatusView`, :func:`status_line`), and
the note per event worth reading and the marks events leave (:class:`Display`). Where they
are written is :mod:`ptt_client.radio.console`; the session's and the floor's notes are
:mod:`ptt_client.radio.session_notes`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from ptt_client import events
from ptt_client.client import FloorView, RadioClient
from ptt_client.radio.notes import Note, note
from ptt_client.radio.trust_notes import trust_note
from ptt_client.voice import Player
from ptt_protocol import control

ALERTS_REMEMBERED: Final = 256
"""Alert ids already shown: the server sends an active alert again when it is updated."""


@dataclass(frozen=True)
class StatusView:
    """What the status line shows."""

    channel: str
    connected: bool
    floor: str
    """idle, requested, granted, queued, taken, denied, revoked"""
    talker: str = ""
    broadcast: bool = False
    """The talker broadcasts (TS 22.179 6.2.3): one way, to several channels."""
    verified: bool = False
    heard_on: str = ""
    """A scanned channel the talker is on, when it is not the selected one."""
    queue_position: int = 0
    media: str = "udp"
    loss_percent: float | None = None
    status: str = control.STATUS_AVAILABLE
    emergency: bool = False
    transmitting: bool = False
    call: str = ""
    """The private call, as :func:`ptt_client.radio.call_notes.call_status` puts it."""


def status_line(view: StatusView) -> str:
    """One line, e.g. ``patrol | RX Bob Brown verified | udp | loss 1.2% | on_scene``."""
    parts = [view.channel]
    if not view.connected:
        parts.append("offline, reconnecting")
    elif view.transmitting or view.floor == "granted":
        parts.append("TX")
    elif view.talker:
        heard = f" on {view.heard_on}" if view.heard_on else ""
        rx = "RX BROADCAST" if view.broadcast else "RX"
        parts.append(f"{rx} {view.talker}{' verified' if view.verified else ''}{heard}")
    elif view.floor == "queued":
        parts.append(f"queued #{view.queue_position}")
    else:
        parts.append(view.floor)
    parts.append(view.media)
    parts.append("loss -" if view.loss_percent is None else f"loss {view.loss_percent:.1f}%")
    parts.append(view.status)
    if view.call:
        parts.append(view.call)
    line = " | ".join(parts)
    return f"EMERGENCY | {line}" if view.emergency else line


def channel_name(client: RadioClient, channel_id: int | None) -> str:
    """The channel's name, its id if the client has no name for it, ``-`` for no channel."""
    if channel_id is None:
        return "-"
    return client.channels.get(channel_id, str(channel_id))


class Display:
    """The officer's view of what ``client`` hears and ``player`` plays: a note for each
    event worth reading (:meth:`event_note`) and the status line's contents (:meth:`view`).

    It remembers what events vouch for: which burst's talker signature verified (the
    "verified" mark) and which emergencies were already shown, and whose they are.
    """

    def __init__(self, client: RadioClient, player: Player) -> None:
        self.client = client
        self.player = player
        self._verified: dict[int, tuple[int, str]] = {}
        """channel -> (burst id whose talker signature verified, the name the talker's
        root-signed credential carries)."""
        self._distrusted: dict[int, int] = {}
        """channel -> burst id found forged or unverified: never shown verified."""
        self._last_heard: tuple[int, str, int] | None = None
        self._alerts_shown: OrderedDict[bytes, str] = OrderedDict()
        """alert id -> whose alert it is."""

    def event_line(self, event: object) -> str | None:
        """Take note of ``event``; the line to print for it, or ``None``."""
        found = self.event_note(event)
        return found.text if found is not None else None

    def _name(self, channel_id: int | None) -> str:
        return channel_name(self.client, channel_id)

    def event_note(self, event: object) -> Note | None:
        """Take note of ``event``; the note to print for it, or ``None``."""
        client = self.client
        if isinstance(event, control.Error):
            return note(
                "server_error",
                f"server: {event.text or event.code}",
                code=event.code,
                text=event.text,
            )
        if isinstance(event, events.EpochInstalled):
            channel = self._name(event.channel_id)
            return note(
                "epoch",
                f"keys: {channel} epoch {event.epoch},"
                f" made by {event.creator_name or event.creator} ({event.creator_role})",
                channel=channel,
                epoch=event.epoch,
                creator=event.creator,
                creator_name=event.creator_name,
                creator_role=event.creator_role,
            )
        if isinstance(event, events.EpochRefused):
            channel = self._name(event.channel_id)
            return note(
                "epoch_refused",
                f"WARNING: key epoch {event.epoch} for {channel}"
                f" from {event.creator or '?'} refused: {event.reason}",
                channel=channel,
                epoch=event.epoch,
                creator=event.creator,
                reason=event.reason,
            )
        if isinstance(event, events.TalkerVerified):
            # A later statement vouches for later frames, not for what went unverified.
            if self._distrusted.get(event.channel_id) != event.burst_id:
                self._verified[event.channel_id] = (event.burst_id, event.display_name)
            return None
        if isinstance(event, (events.ForgedAudio, events.TalkerUnverified)):
            self._distrusted[event.channel_id] = event.burst_id
            verified = self._verified.get(event.channel_id)
            if verified is not None and verified[0] == event.burst_id:
                del self._verified[event.channel_id]
            forged = isinstance(event, events.ForgedAudio)
            what = "did not verify" if forged else "is unverified"
            return note(
                "audio_forged" if forged else "audio_unverified",
                f"WARNING: audio claimed as {event.talker} {what}: {event.reason}",
                channel=self._name(event.channel_id),
                talker=event.talker,
                burst_id=event.burst_id,
                reason=event.reason,
            )
        if isinstance(event, events.TextReceived):
            where = (
                f" on {self._name(event.to_channel)}"
                if event.to_channel is not None
                else " (direct)"
            )
            return note(
                "text",
                f"text from {event.from_user}{where}: {event.text}",
                **{"from": event.from_user},
                channel=self._name(event.to_channel) if event.to_channel is not None else None,
                text=event.text,
                message_id=event.message_id,
                sent_at=event.sent_at,
            )
        if isinstance(event, control.EmergencyAlert) and event.user_id != client.user_id:
            if not self._first_sight(event.alert_id, event.user_id):
                return None
            channel = self._name(event.channel_id)
            peril = event.kind == control.ALERT_IMMINENT_PERIL
            return note(
                "imminent_peril" if peril else "emergency",
                f"{'IMMINENT PERIL' if peril else 'EMERGENCY'}: {event.user_id} on {channel}",
                user=event.user_id,
                channel=channel,
                alert_id=event.alert_id,
            )
        if isinstance(event, control.EmergencyAck):
            return self._acknowledged(event)
        if isinstance(event, control.EmergencyCancel):
            by = "you" if event.by_user == client.user_id else event.by_user
            return note(
                "emergency_cancelled",
                f"emergency cancelled by {by}",
                by=event.by_user,
                alert_id=event.alert_id,
            )
        if isinstance(event, control.Goodbye):
            return note("goodbye", f"server says goodbye: {event.reason}", reason=event.reason)
        if isinstance(event, events.ProtectionChanged):
            return self._protection(event)
        return trust_note(event, client.user_id, self._name)

    def _acknowledged(self, event: control.EmergencyAck) -> Note:
        whose = self._alerts_shown.get(event.alert_id, "")
        if event.alert_id == self.client.emergency_alert:
            whose, text = self.client.user_id, f"your emergency acknowledged by {event.by_user}"
        elif whose:
            text = f"emergency of {whose} acknowledged by {event.by_user}"
        else:
            text = f"an emergency acknowledged by {event.by_user}"
        return note(
            "emergency_acknowledged", text, by=event.by_user, user=whose, alert_id=event.alert_id
        )

    def _protection(self, event: events.ProtectionChanged) -> Note:
        where = self._name(event.channel_id)
        if not event.distances:
            text = f"link on {where}: clean, voice sent without repeats"
        else:
            text = (
                f"link on {where}: {event.loss_pct:.0f} % lost on the way to your listeners,"
                f" each packet repeats {len(event.distances)} earlier one(s)"
            )
        return note(
            "protection",
            text,
            channel=where,
            loss_pct=event.loss_pct,
            repeats=len(event.distances),
        )

    def _first_sight(self, alert_id: bytes, user_id: str) -> bool:
        """True the first time ``alert_id`` is seen (one line per emergency, not per update)."""
        if alert_id in self._alerts_shown:
            return False
        self._alerts_shown[alert_id] = user_id
        if len(self._alerts_shown) > ALERTS_REMEMBERED:
            self._alerts_shown.popitem(last=False)
        return True

    def view(self, *, transmitting: bool) -> StatusView:
        """The status line's contents, from the client's and the player's state."""
        client = self.client
        selected = client.selected
        floor = client.floors.get(selected, FloorView()) if selected is not None else FloorView()
        talker_channel = selected
        if not (floor.state == "taken" and floor.talker):
            # Scanning: show a talker on another affiliated channel.
            for channel_id in sorted(client.affiliated):
                other = client.floors.get(channel_id)
                if other is not None and other.state == "taken" and other.talker:
                    floor, talker_channel = other, channel_id
                    break
        talking = floor.state == "taken" and bool(floor.talker)
        vouched = self._verified.get(talker_channel) if talker_channel is not None else None
        verified = talking and vouched is not None and vouched[0] == floor.burst_id
        # The name the talker's root-signed credential carries, as beside the mark: the
        # display name in FloorTaken is the relay's word, and a relay could name bob "Alice"
        # while bob's own statements verify (issue 9 red team). The relay's name is shown
        # only for a talker whose credential this radio does not hold (never verified).
        credential = client.keyring.credentials.get(floor.talker) if floor.talker else None
        name = (vouched[1] if verified and vouched is not None else "") or (
            credential.display_name if credential is not None else floor.talker_name
        )
        return StatusView(
            channel=channel_name(client, selected),
            connected=client.connected.is_set(),
            floor=floor.state,
            talker=(name or floor.talker or "") if talking else "",
            broadcast=talking and floor.broadcast,
            verified=verified,
            heard_on=(
                client.channels.get(talker_channel, "")
                if talking and talker_channel != selected and talker_channel is not None
                else ""
            ),
            queue_position=floor.queue_position,
            media=client.media_path,
            loss_percent=self._loss_percent(),
            status=client.status,
            emergency=client.emergency_alert is not None,
            transmitting=transmitting,
        )

    def _loss_percent(self) -> float | None:
        """Frames lost in the jitter buffer of the stream heard last, or ``None`` before any."""
        current = self.player.mixer.current
        if current is not None:
            self._last_heard = current
        if self._last_heard is None:
            return None
        buffer = self.player.mixer.buffer(self._last_heard)
        if buffer is None or not buffer.stats.played + buffer.stats.lost:
            return None
        stats = buffer.stats
        return 100.0 * stats.lost / (stats.played + stats.lost)
