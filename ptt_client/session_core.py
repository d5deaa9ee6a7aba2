"""The radio's side of the control session, without I/O.

Like h11's ``Connection`` or python-websockets' ``ClientProtocol``: messages from the
server go in (:meth:`ClientSessionCore.hello`, :meth:`~ClientSessionCore.login_answer`,
:meth:`~ClientSessionCore.receive`), the officer's actions go in (:meth:`~ClientSessionCore.press`,
:meth:`~ClientSessionCore.affiliate`, ...), and what to do comes out as :data:`Effect`
objects: control messages to send, events to report, work for the key ring, the media path
and the texts. :class:`ptt_client.client.RadioClient` is the loop around it that owns the
WebSocket, the UDP socket and the clock.

It holds what the radio knows across reconnects: the channels it may join, the ones it
joined and the one it talks on, its status, its active emergency, and one
:class:`~ptt_client.floor_view.ChannelFloor` (the TS 24.380 floor participant) per channel.

Phases of one connection: ``DISCONNECTED`` -> (``connection_opened``) ``AWAITING_HELLO`` ->
(``hello``: the Login to send) ``AWAITING_ANSWER`` -> ``LOGGED_IN``, or ``REFUSED`` when
retrying cannot help (the credential was refused, or the session was taken over by another
login of the same credential); ``REFUSED`` is final.

Nothing the server sends raises out of :meth:`~ClientSessionCore.receive`: a message the
server should not send, or a floor message that does not fit the floor participant's state,
comes back as :class:`Dropped` (log it, change nothing). Only the login handshake raises
:class:`~ptt_protocol.errors.ProtocolError`, and the caller drops the connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from crypto.identity import Credential, DeviceKeys
from ptt_client import events
from ptt_client.broadcasts import BroadcastFloors
from ptt_client.floor_view import FLOOR_MESSAGES, ChannelFloor, FloorView
from ptt_client.patch_following import ENDED_PATCHES, RENEW_RETRY, PatchFollowing
from ptt_client.session_effects import (
    BurstEnded,
    BurstStarted,
    CallMessage,
    Dropped,
    Effect,
    Emit,
    HeardBurstOver,
    KeyMaterial,
    MediaArrived,
    PatchArrived,
    PongArrived,
    Send,
    TalkerNamed,
    TextArrived,
    TextStored,
)
from ptt_protocol import control
from ptt_protocol.errors import ProtocolError
from ptt_protocol.floor_participant import (
    EndBurst,
    Ignored,
    ParticipantEffect,
    SendFloorRelease,
    SendFloorRequest,
    StartBurst,
)
from ptt_protocol.login import login_statement

__all__ = [
    "CLIENT_ONLY_MESSAGES",
    "ENDED_PATCHES",
    "RENEW_RETRY",
    "RETRYABLE_LOGIN_ERRORS",
    "BurstEnded",
    "BurstStarted",
    "CallMessage",
    "ClientSessionCore",
    "Dropped",
    "Effect",
    "Emit",
    "HeardBurstOver",
    "KeyMaterial",
    "LoggedIn",
    "MediaArrived",
    "PatchArrived",
    "Phase",
    "PongArrived",
    "Refused",
    "Send",
    "TalkerNamed",
    "TextArrived",
    "TextStored",
]

CLIENT_SOFTWARE: Final = "fieldradio"


CLIENT_ONLY_MESSAGES: Final[frozenset[type[control.Message]]] = frozenset(
    {
        control.Login,
        control.Affiliate,
        control.Deaffiliate,
        control.SelectChannel,
        control.ChannelCreate,
        control.ChannelDelete,
        control.FloorRequest,
        control.BroadcastRequest,
        control.FloorRelease,
        control.PresenceSubscribe,
        control.SetStatus,
        control.LocationReport,
        control.ReceiverReport,
        control.TextSend,
        control.CredentialRequest,
        control.Enroll,
        control.DirectoryRequest,
        control.IceServersRequest,
        control.CallOffer,
        control.CallTalk,
        control.CallLogRequest,
    }
)
"""Messages only a client sends: from the server they mean nothing and are dropped."""

_CANCEL_ANSWERS: Final = frozenset({control.ERROR_NOT_FOUND, control.ERROR_RATE_LIMITED})
"""The refusals a cancel of this radio's own alert can get (the server checks the rest)."""

RETRYABLE_LOGIN_ERRORS: Final = frozenset({control.ERROR_INTERNAL, control.ERROR_RATE_LIMITED})
"""Login refusals that say "try again" (a storage hiccup, too many logins at once): the radio
reconnects with backoff. Every other refusal is about the credential or the request, and
retrying would only repeat it."""

CALL_MESSAGES: Final = (
    control.IceServers,
    control.CallIncoming,
    control.CallRinging,
    control.CallAnswer,
    control.CallEnd,
    control.CallTalker,
)
"""Private-call signalling, for ``ptt_client.calls``."""

KEY_MATERIAL: Final = (
    control.RosterUpdate,
    control.KeyEnvelope,
    control.RevocationUpdate,
    control.Credentials,
)
"""What the key ring checks and keeps (``ptt_client.e2e.Keyring``)."""

EMERGENCY_PRIORITY: Final = control.PRIORITY_MAX
IMMINENT_PERIL_PRIORITY: Final = 3
DISPATCHER_PRIORITY: Final = 2
OFFICER_PRIORITY: Final = 1


class Phase(Enum):
    DISCONNECTED = "disconnected"
    AWAITING_HELLO = "awaiting hello"
    AWAITING_ANSWER = "awaiting the login answer"
    LOGGED_IN = "logged in"
    REFUSED = "refused"


# --- effects -------------------------------------------------------------------------------


# --- login answers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The login was accepted: open the media path, then run ``effects`` (re-join channels)."""

    reply: control.LoginOk
    effects: list[Effect] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Refused:
    """The login was refused. ``retry``: the server said to try again later."""

    code: str
    text: str
    retry: bool

    @property
    def event(self) -> events.LoginRefused:
        return events.LoginRefused(code=self.code, text=self.text)


# --- the core ------------------------------------------------------------------------------


class ClientSessionCore(BroadcastFloors, PatchFollowing):
    """What a radio knows and does on its control session (pure; its broadcast group call
    is :class:`ptt_client.broadcasts.BroadcastFloors`, the dispatchers' patches it follows
    :class:`ptt_client.patch_following.PatchFollowing`)."""

    def __init__(self, credential: Credential, keys: DeviceKeys) -> None:
        self.credential = credential
        self.user_id = credential.user_id
        self._keys = keys
        self.phase = Phase.DISCONNECTED
        self.refused: events.LoginRefused | None = None
        """Why the server will not have this radio; set once, and the radio stops retrying."""
        self.session_index = 0
        self.channels: dict[int, str] = {}
        self.affiliated: set[int] = set()
        self.selected: int | None = None
        self.status: str = control.STATUS_AVAILABLE
        self.emergency_alert: bytes | None = None
        self.alert_kind: str = control.ALERT_EMERGENCY
        """The kind of :attr:`emergency_alert`, as the server recorded it."""
        self.cancelling: bytes | None = None
        """This radio's alert whose cancel was sent and not yet confirmed: the alert stays
        active until the server says it is over (a cancel can be refused, and the alert then
        stays active for the dispatchers too)."""
        self.broadcasting = ()
        self.floors: dict[int, FloorView] = {}
        """The view of every channel's floor (read by displays and the key ring)."""
        self._floors: dict[int, ChannelFloor] = {}
        self._init_patches()

    @property
    def may_retry(self) -> bool:
        """False once the server refused this radio for good."""
        return self.phase is not Phase.REFUSED

    @property
    def logged_in(self) -> bool:
        return self.phase is Phase.LOGGED_IN

    # --- the login handshake ---------------------------------------------------------------

    def connection_opened(self) -> None:
        """A new control connection (TLS up, certificate checked): the server speaks first."""
        if self.phase is Phase.REFUSED:
            raise RuntimeError(f"the server refused this radio: {self.refused}")
        self.phase = Phase.AWAITING_HELLO

    def hello(
        self, message: control.Message, tls_fingerprint: bytes, client_nonce: bytes
    ) -> control.Login:
        """The server's first message: the Login to answer it with (signed, bound to the TLS
        certificate seen, so a relayed login is useless elsewhere)."""
        if self.phase is not Phase.AWAITING_HELLO:
            raise ProtocolError(f"a Hello while {self.phase.value}")
        if not isinstance(message, control.Hello):
            raise ProtocolError(f"server did not say hello (sent {control.tag_of(message)})")
        statement = login_statement(message.server_nonce, client_nonce, tls_fingerprint)
        self.phase = Phase.AWAITING_ANSWER
        return control.Login(
            credential=self.credential.to_bytes(),
            signature=self._keys.sign(statement),
            client_nonce=client_nonce,
            client_software=CLIENT_SOFTWARE,
        )

    def login_answer(self, message: control.Message) -> LoggedIn | Refused:
        """LoginOk (re-join what was joined) or an Error (stop, or retry if it says so)."""
        if self.phase is not Phase.AWAITING_ANSWER:
            raise ProtocolError(f"a login answer while {self.phase.value}")
        if isinstance(message, control.Error):
            retry = message.code in RETRYABLE_LOGIN_ERRORS
            refused = Refused(message.code, message.text, retry)
            if retry:
                self.phase = Phase.DISCONNECTED
            else:
                self.phase = Phase.REFUSED
                self.refused = refused.event
            return refused
        if not isinstance(message, control.LoginOk):
            raise ProtocolError(f"server did not answer the login (sent {control.tag_of(message)})")
        self.phase = Phase.LOGGED_IN
        self.session_index = message.session_index
        # The server re-sends the patches still on after login; one ended meanwhile is over.
        self.affiliated -= self.patches.keys()
        if self.selected in self.patches:
            self.selected = None
        self._orders.clear()
        self._held.clear()
        return LoggedIn(message, self._rejoin())

    def _rejoin(self) -> list[Effect]:
        """After a (re)login: the server forgot this radio's channels, selection and status."""
        effects: list[Effect] = [
            Send(control.Affiliate(channel_id=c)) for c in sorted(self.affiliated)
        ]  # (patches' channels are not in it: the server tells of those still on)
        if self.selected is not None:
            effects.append(Send(control.SelectChannel(channel_id=self.selected)))
        if self.status != control.STATUS_AVAILABLE:
            effects.append(Send(control.SetStatus(status=self.status)))  # type: ignore[arg-type]
        return effects

    def connection_lost(self) -> list[Effect]:
        """The control connection is gone: the server released our floors (TS 24.380: a
        disconnect is a release) and we hear nobody until we are back."""
        if self.phase is not Phase.REFUSED:
            self.phase = Phase.DISCONNECTED
        effects: list[Effect] = []
        for channel_id, floor in self._floors.items():
            effects += self._floor_effects(channel_id, floor.disconnected())
            self.floors[channel_id] = floor.view
        return effects

    # --- the officer's actions -------------------------------------------------------------

    def transmit_channel(self, channel_id: int | None) -> int | None:
        """Where PTT on ``channel_id`` (default: the selected channel) talks: the channel
        itself, or while it is patched, the patch's channel (all the linked ones hear it)."""
        channel = channel_id if channel_id is not None else self.selected
        if channel is None:
            return None
        patch = self.patch_of(channel)
        return patch if patch is not None and patch in self.affiliated else channel

    def default_priority(self) -> int:
        """The role's priority, or while this radio's alert is active its level (emergency,
        or the imminent peril's, between emergency and dispatcher)."""
        if self.emergency_alert is not None:
            if self.alert_kind == control.ALERT_IMMINENT_PERIL:
                return IMMINENT_PERIL_PRIORITY
            return EMERGENCY_PRIORITY
        return DISPATCHER_PRIORITY if self.credential.is_key_manager() else OFFICER_PRIORITY

    def press(self, channel_id: int, priority: int | None = None) -> list[Effect]:
        """PTT down: a Floor Request, unless the key is down already."""
        wanted = priority if priority is not None else self.default_priority()
        return self._floor_effects(channel_id, self._floor(channel_id).press(wanted))

    def release(self, channel_id: int) -> list[Effect]:
        """PTT up: end our burst and release, or cancel our request; after the floor was
        taken away (revoke, pre-emption), nothing."""
        return self._floor_effects(channel_id, self._floor(channel_id).release())

    def ptt_down(self, channel_id: int) -> bool:
        floor = self._floors.get(channel_id)
        return floor is not None and floor.ptt_down

    def keys_down(self) -> list[int]:
        """Channels whose PTT key is held (a toggle's "stop" lets go of these)."""
        return sorted(c for c, floor in self._floors.items() if floor.ptt_down)

    def talking_burst(self, channel_id: int) -> int | None:
        """The burst this radio may send media in on ``channel_id``, or None."""
        floor = self._floors.get(channel_id)
        return floor.talking_burst if floor is not None else None

    def affiliate(self, channel_id: int, select: bool | None = None) -> list[Effect]:
        self.affiliated.add(channel_id)
        effects: list[Effect] = [Send(control.Affiliate(channel_id=channel_id))]
        if select or (select is None and self.selected is None):
            effects += self.select(channel_id)
        return effects + self._join_patches()

    def deaffiliate(self, channel_id: int) -> list[Effect]:
        self.affiliated.discard(channel_id)
        if self.selected == channel_id:
            self.selected = None
        return [Send(control.Deaffiliate(channel_id=channel_id))]

    def select(self, channel_id: int) -> list[Effect]:
        self.selected = channel_id
        return [Send(control.SelectChannel(channel_id=channel_id))]

    def set_status(self, status: str) -> list[Effect]:
        self.status = status
        return [Send(control.SetStatus(status=status))]  # type: ignore[arg-type]

    def raise_emergency(self, alert: control.EmergencyAlert) -> list[Effect]:
        if self.emergency_alert is None or alert.kind == control.ALERT_EMERGENCY:
            self.alert_kind = alert.kind  # a peril press never makes an emergency less
        self.emergency_alert = alert.alert_id
        self.cancelling = None  # a press after a cancel: the new alert is not being cancelled
        return [Send(alert)]

    def cancel_emergency(self, alert_id: bytes | None) -> list[Effect]:
        target = alert_id or self.emergency_alert
        if target is None:
            return []
        if target == self.emergency_alert:
            self.cancelling = target
        return [Send(control.EmergencyCancel(alert_id=target, by_user=self.user_id))]

    # --- the server's messages -------------------------------------------------------------

    def receive(self, message: control.Message) -> list[Effect]:
        """What to do with one message from the server, once logged in."""
        if self.phase is not Phase.LOGGED_IN:
            return [Dropped(message, f"arrived while {self.phase.value}")]
        if type(message) in CLIENT_ONLY_MESSAGES or isinstance(
            message, control.Hello | control.LoginOk
        ):
            return [Dropped(message, "the server does not send this after login")]
        if isinstance(message, FLOOR_MESSAGES):
            return self._on_floor(message)
        if isinstance(message, CALL_MESSAGES):
            return [CallMessage(message)]  # the calls report their own events
        effects = self._on_message(message)
        if isinstance(message, control.MediaTunnel | control.Patch):
            return effects  # media, not an event; a patch is reported once its order checks out
        return [*effects, Emit(message)]

    def _on_message(self, message: control.Message) -> list[Effect]:
        if isinstance(message, control.MediaTunnel):
            return [MediaArrived(message.datagram)]
        if isinstance(message, control.Pong):
            return [PongArrived(message.nonce)]
        if isinstance(message, control.ChannelList):
            for info in message.channels:
                self.channels[info.channel_id] = info.name
        elif isinstance(message, control.Affiliated | control.ChannelCreated):
            self.channels[message.channel_id] = message.name
        elif isinstance(message, control.Deaffiliated):
            if message.reason != "at your request":
                self.affiliated.discard(message.channel_id)
        elif isinstance(message, control.Patch):
            return [PatchArrived(message)]
        elif isinstance(message, control.Unpatch):
            return self._unpatch(message.channel_id)
        elif isinstance(message, control.ChannelDeleted):
            # The server deaffiliated us already; a patch cannot hold a deleted channel, and
            # an order for one (e.g. of a patch the relay refused, still unexpired) is a replay.
            self.channels.pop(message.channel_id, None)
            self.affiliated.discard(message.channel_id)
            self._unpatch(message.channel_id)  # deaffiliated already: sends nothing
            if message.channel_id not in self._ended and message.channel_id not in self._deleted:
                self._deleted.append(message.channel_id)
            if self.selected == message.channel_id:
                self.selected = None
        elif isinstance(message, KEY_MATERIAL):
            return [KeyMaterial(message)]
        elif isinstance(message, control.TextReceipt):
            if message.kind == control.RECEIPT_STORED:
                return [TextStored(message.message_id)]
        elif isinstance(message, control.TextDeliver):
            return [TextArrived(message)]
        elif isinstance(message, control.Error):
            if self.cancelling is not None and message.code in _CANCEL_ANSWERS:
                self._cancel_answered(message.code)
            if message.code == control.ERROR_LOGGED_IN_ELSEWHERE:
                # Another device (or a copy of this bundle) took over the credential:
                # retrying would take the session back from it, and the two would flap.
                self.phase = Phase.REFUSED
                self.refused = events.LoginRefused(code=message.code, text=message.text)
                return [Emit(self.refused)]
        elif isinstance(message, control.EmergencyCancel):
            if message.alert_id == self.emergency_alert:
                self.emergency_alert = self.cancelling = None
        elif isinstance(message, control.EmergencyAlert) and message.user_id == self.user_id:
            # The server keeps one alert per user: a press is recorded under the active
            # alert's id, which is the one to cancel (also after a restart of this radio).
            self.emergency_alert = message.alert_id
            self.alert_kind = message.kind
        return []

    def _cancel_answered(self, code: str) -> None:
        """A refusal while this radio's cancel is unconfirmed. The server answers in order
        but names no request, so the first such refusal is taken as the cancel's: "no such
        emergency" means nothing is active there; "rate limited" means the alert is still
        active (the officer sees the refusal and cancels again)."""
        if code == control.ERROR_NOT_FOUND and self.cancelling == self.emergency_alert:
            self.emergency_alert = None
        self.cancelling = None

    def _on_floor(
        self,
        message: control.FloorGranted
        | control.FloorDeny
        | control.FloorQueuePosition
        | control.FloorRevoke
        | control.FloorTaken
        | control.FloorIdle,
    ) -> list[Effect]:
        channel_id = message.channel_id
        floor = self._floor(channel_id)
        outcome = floor.receive(message)
        self.floors[channel_id] = floor.view
        ignored = [e for e in outcome if isinstance(e, Ignored)]
        if ignored:
            # TS 24.380 6.2.4: a message with no procedure in this state is discarded. Not
            # reported either: a stray grant must not show "talking" nor play the permit tone.
            return [Dropped(message, f"{ignored[0].what} in '{ignored[0].state.value}'")]
        effects: list[Effect] = []
        if isinstance(message, control.FloorTaken):
            effects.append(TalkerNamed(message))
        elif isinstance(message, control.FloorIdle):
            effects.append(HeardBurstOver(channel_id, released=True))
        elif isinstance(message, control.FloorRevoke):
            effects.append(HeardBurstOver(channel_id, released=False))
        effects += self._floor_effects(channel_id, outcome)
        effects.append(Emit(message))
        return effects

    # --- floors ----------------------------------------------------------------------------

    def _floor(self, channel_id: int) -> ChannelFloor:
        floor = self._floors.get(channel_id)
        if floor is None:
            floor = self._floors[channel_id] = ChannelFloor(self.user_id)
            self.floors[channel_id] = floor.view
        return floor

    def _floor_effects(self, channel_id: int, outcome: list[ParticipantEffect]) -> list[Effect]:
        """The participant's effects as the radio's: messages on this channel, bursts."""
        effects: list[Effect] = []
        for effect in outcome:
            if isinstance(effect, SendFloorRequest):
                effects.append(
                    Send(control.FloorRequest(channel_id=channel_id, priority=effect.priority))
                )
            elif isinstance(effect, SendFloorRelease):
                effects.append(Send(control.FloorRelease(channel_id=channel_id)))
            elif isinstance(effect, StartBurst):
                effects.append(BurstStarted(channel_id, effect.burst_id))
            elif isinstance(effect, EndBurst):
                effects.append(BurstEnded(channel_id, effect.burst_id, effect.reason))
        return effects
