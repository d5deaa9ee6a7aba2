"""Who may send what to the relay, and what it costs: the one authorisation table.

Every control message a client may send has one :class:`Rule` in :data:`RULES`: which
roles may send it and which rate budget it draws on. Messages only the server sends
(``LoginOk``, ``FloorGranted``, ...) have no rule and are refused. Checks that depend on
the object (is this user on the channel, is this the raiser's alert) are small pure
functions below, next to the table, so no handler repeats a role check.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from crypto.identity import Role
from ptt_protocol import control

__all__ = [
    "RULES",
    "Budget",
    "Enrolment",
    "Refusal",
    "Refused",
    "Rule",
    "Who",
    "authorise",
    "enrolment",
    "may_call",
    "may_cancel_emergency",
    "on_the_air",
]


class Who(Enum):
    """Which roles may send a message."""

    ANY_MEMBER = "any enrolled device"
    KEY_MANAGER = "a dispatcher or the org authority"
    AUTHORITY = "the org authority (ptt-admin)"


class Budget(Enum):
    """The per-session rate budget a message draws on (besides the control-byte budget)."""

    FREE = "free"
    FLOOR = "floor requests"
    MESSAGES = "messages"


@dataclass(frozen=True, slots=True)
class Rule:
    """May a role send this message, and what does it cost."""

    who: Who
    budget: Budget
    action: str
    """What the message does, for refusals: "only a dispatcher may <action>"."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message is refused: answer ``Error(code, text)`` and carry on."""

    code: str
    text: str


class Refused(Exception):
    """A control message is refused: the server sends ``Error(code, text)`` and carries on."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


_ANY, _KM, _AUTH = Who.ANY_MEMBER, Who.KEY_MANAGER, Who.AUTHORITY
_FREE, _FLOOR, _MSG = Budget.FREE, Budget.FLOOR, Budget.MESSAGES

RULES: Final[dict[type[control.Message], Rule]] = {
    control.Affiliate: Rule(_ANY, _FREE, "join a channel"),
    control.Deaffiliate: Rule(_ANY, _FREE, "leave a channel"),
    control.SelectChannel: Rule(_ANY, _FREE, "select a channel"),
    control.FloorRequest: Rule(_ANY, _FLOOR, "ask for the floor"),
    control.FloorRelease: Rule(_ANY, _FREE, "release the floor"),
    control.MediaTunnel: Rule(_ANY, _FREE, "send media over the tunnel"),
    control.ReceiverReport: Rule(_ANY, _FREE, "report reception"),
    control.Ping: Rule(_ANY, _FREE, "ping"),
    control.SetStatus: Rule(_ANY, _MSG, "change status"),
    control.LocationReport: Rule(_ANY, _MSG, "report a location"),
    control.TextSend: Rule(_ANY, _MSG, "send texts"),
    control.TextReceipt: Rule(_ANY, _FREE, "send receipts"),
    control.CredentialRequest: Rule(_ANY, _MSG, "ask for credentials"),
    control.EmergencyAlert: Rule(_ANY, _FREE, "raise an emergency"),
    # Cancels draw on the message budget: each raise after a cancel is a new alert, stored
    # for good, so raise/cancel cycles were the one unbudgeted store write (issue 9 red team).
    # A refused cancel changes nothing: the alert stays active, the safe side.
    control.EmergencyCancel: Rule(_ANY, _MSG, "cancel an emergency"),
    control.RecallList: Rule(_ANY, _MSG, "list recordings"),
    control.RecallFrames: Rule(_ANY, _MSG, "fetch recordings"),
    control.EmergencyAck: Rule(_KM, _FREE, "acknowledge an emergency"),
    control.PresenceSubscribe: Rule(_KM, _FREE, "watch presence"),
    control.RosterUpdate: Rule(_KM, _FREE, "change a roster"),
    control.KeyEnvelope: Rule(_KM, _FREE, "hand out channel keys"),
    control.BroadcastRequest: Rule(_KM, _FLOOR, "broadcast to channels"),
    control.ChannelCreate: Rule(_KM, _FREE, "create channels"),
    control.Patch: Rule(_KM, _FREE, "patch channels"),
    control.Unpatch: Rule(_KM, _FREE, "end a patch"),
    control.ChannelDelete: Rule(_KM, _FREE, "delete channels"),
    control.IceServersRequest: Rule(_ANY, _MSG, "ask for call relays"),
    control.CallOffer: Rule(_ANY, _MSG, "place private calls"),
    control.CallRinging: Rule(_ANY, _FREE, "ring"),
    control.CallAnswer: Rule(_ANY, _FREE, "answer calls"),
    control.CallEnd: Rule(_ANY, _FREE, "end calls"),
    control.CallTalk: Rule(_ANY, _FLOOR, "talk in a call"),
    control.CallLogRequest: Rule(_ANY, _MSG, "read the call log"),
    control.Enroll: Rule(_AUTH, _FREE, "enroll devices"),
    control.RevocationUpdate: Rule(_AUTH, _FREE, "publish revocation lists"),
    control.DirectoryRequest: Rule(_AUTH, _FREE, "read the directory"),
}
"""Every message a client may send. TS 22.179 roles: dispatchers manage and watch; the
org authority alone speaks for the org root."""

_ALLOWED: Final[dict[Who, frozenset[Role]]] = {
    Who.ANY_MEMBER: frozenset(Role),
    Who.KEY_MANAGER: frozenset({Role.DISPATCHER, Role.ADMIN}),
    Who.AUTHORITY: frozenset({Role.ADMIN}),
}


def authorise(role: Role, message: control.Message) -> Rule | Refusal:
    """The rule for ``message`` if ``role`` may send it, else the refusal to answer."""
    rule = RULES.get(type(message))
    if rule is None:
        return Refusal(
            control.ERROR_BAD_MESSAGE, f"{control.tag_of(message)} is not for the server"
        )
    if role not in _ALLOWED[rule.who]:
        return Refusal(control.ERROR_FORBIDDEN, f"only {rule.who.value} may {rule.action}")
    return rule


def may_call(caller: Role, callee: Role) -> bool:
    """Private calls: officers call officers and dispatchers; a dispatcher (or the authority)
    calls anyone."""
    return caller in _ALLOWED[Who.KEY_MANAGER] or callee in (Role.OFFICER, Role.DISPATCHER)


def may_cancel_emergency(user_id: str, role: Role, raiser: str) -> bool:
    """The officer who raised an emergency, or a dispatcher (or the authority), cancels it."""
    return user_id == raiser or role in _ALLOWED[Who.KEY_MANAGER]


class Enrolment(Enum):
    """What a verified login's credential needs before its session goes live."""

    ENROLLED = "enrolled with this device"
    RECORD_AUTHORITY = "the org authority: record it (it needs no enrolment)"
    NOT_ENROLLED = "not enrolled with this device"


def enrolment(role: Role, fingerprint: bytes, enrolled: bytes | None) -> Enrolment:
    """Whether a credential (``fingerprint``) matches the device enrolled for its user
    (``enrolled``, None if the user is not enrolled).

    The org authority needs no enrolment: a root-issued admin credential is the authority
    itself (only the root's holder can make one), and its first login records it, so
    nobody has to write the relay's database by hand.
    """
    if enrolled == fingerprint:
        return Enrolment.ENROLLED
    if role is Role.ADMIN:
        return Enrolment.RECORD_AUTHORITY
    return Enrolment.NOT_ENROLLED


def on_the_air(role: Role | str) -> bool:
    """Whether a user has a presence dispatchers watch: the org authority administers, it
    is not an officer on the air."""
    return (role.value if isinstance(role, Role) else role) != Role.ADMIN.value
