"""Private calls (3GPP TS 23.379 private call): signalling over the control plane.

Part of the control protocol: see :mod:`ptt_protocol.control` for the framing and the rules
every message follows.

A private call is one-to-one and carried peer to peer by WebRTC (ICE, DTLS-SRTP); the relay
only moves the signalling. The flow::

    caller                      relay                       callee
    IceServersRequest  ->
                       <-  IceServers (TURN credentials for this caller)
    CallOffer          ->  (policy, busy, online; rings)  ->  CallIncoming
                       <-  CallRinging (manual commencement: the callee's radio rings)
                       <-  CallAnswer                 <-  CallAnswer
    ... media peer to peer (or through TURN) ...
    CallEnd            ->                              ->  CallEnd      (either side)

``description`` in an offer or answer is the sender's **signed call description**
(:mod:`crypto.call_description`): the SDP, its DTLS fingerprints, the call id and both users,
signed by the sending device's key, with the sender's org-issued credential inside, so the
other side verifies it against the org root without asking anyone. The relay cannot change
it without the other radio refusing the call.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, TypeAlias, get_args

import msgspec

from ptt_protocol.control_types import (
    MAX_ID_LENGTH,
    Blob,
    Id,
    MessageId,
    Text,
    Time,
    _Message,
    _Part,
)

CALL_FULL_DUPLEX: Final = "full_duplex"
CALL_HALF_DUPLEX: Final = "half_duplex"
CallMode: TypeAlias = Literal["full_duplex", "half_duplex"]
CALL_MODES: Final[tuple[str, ...]] = get_args(CallMode)

COMMENCEMENT_AUTOMATIC: Final = "automatic"
COMMENCEMENT_MANUAL: Final = "manual"
Commencement: TypeAlias = Literal["automatic", "manual"]
"""TS 23.379 commencement modes: the callee's radio answers at once, or rings until the
officer accepts or refuses."""

END_HANGUP: Final = "hangup"
END_REFUSED: Final = "refused"
END_BUSY: Final = "busy"
END_OFFLINE: Final = "offline"
END_FORBIDDEN: Final = "forbidden"
END_NO_ANSWER: Final = "no_answer"
END_FAILED: Final = "failed"
END_PREEMPTED: Final = "preempted"
END_PEER_GONE: Final = "peer_gone"
END_RATE_LIMITED: Final = "rate_limited"
EndReason: TypeAlias = Literal[
    "hangup",
    "refused",
    "busy",
    "offline",
    "forbidden",
    "no_answer",
    "failed",
    "preempted",
    "peer_gone",
    "rate_limited",
]
"""Why a call ended (or never began), machine-readable; ``CallEnd.text`` says it to a person."""
END_REASONS: Final[tuple[str, ...]] = get_args(EndReason)

MAX_ICE_SERVERS: Final = 4
MAX_ICE_URLS: Final = 4
MAX_ICE_URL_LENGTH: Final = 255

IceUrl = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ICE_URL_LENGTH)]
CallId = MessageId
"""16 random bytes chosen by the caller."""


class IceServer(_Part, frozen=True, kw_only=True):
    """One STUN/TURN server a radio may use for a call (only ever from the relay's config)."""

    urls: Annotated[tuple[IceUrl, ...], msgspec.Meta(min_length=1, max_length=MAX_ICE_URLS)]
    """``turn:host:port?transport=udp`` and the like."""
    username: Annotated[str, msgspec.Meta(max_length=2 * MAX_ID_LENGTH)] = ""
    """TURN REST user name ``"<expiry>:<user id>"`` (empty for STUN)."""
    credential: Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)] = ""
    """TURN REST password (HMAC of the user name under the relay's TURN secret)."""


IceServerList = Annotated[tuple[IceServer, ...], msgspec.Meta(max_length=MAX_ICE_SERVERS)]


class IceServersRequest(_Message, frozen=True, kw_only=True):
    """Client -> server: the ICE servers (and TURN credentials) to place a call with."""


class IceServers(_Message, frozen=True, kw_only=True):
    """Server -> client: ICE servers for calls, valid until ``expires_at``."""

    servers: IceServerList
    """Empty when the relay has no TURN server configured (direct paths only)."""
    expires_at: Time
    """When the TURN credentials stop working (ask again before)."""


class CallOffer(_Message, frozen=True, kw_only=True):
    """Client -> server: call ``to_user`` (TS 23.379 private call request)."""

    call_id: CallId
    """Chosen by the caller; names the call in every later message."""
    to_user: Id
    """Who is called."""
    mode: CallMode = CALL_FULL_DUPLEX
    """Full duplex (both talk at once) or half duplex (one at a time, :class:`CallTalk`)."""
    commencement: Commencement = COMMENCEMENT_AUTOMATIC
    """Whether the callee's radio answers at once or rings."""
    emergency: bool = False
    """An emergency private call: answered at once and pre-empts the callee's other call."""
    description: Blob
    """The caller's signed call description (SDP offer, and the caller's credential, so the
    callee verifies it against the org root without asking anyone); opaque to the relay."""


class CallIncoming(_Message, frozen=True, kw_only=True):
    """Server -> callee: someone is calling."""

    call_id: CallId
    """The caller's id for the call."""
    from_user: Id
    """The caller, as the relay authenticated it (the callee checks it against the signature)."""
    display_name: Text = ""
    """The caller's name, from its credential."""
    mode: CallMode = CALL_FULL_DUPLEX
    """As offered (the signed description says it too; radios act on that)."""
    commencement: Commencement = COMMENCEMENT_AUTOMATIC
    """As offered."""
    emergency: bool = False
    """As offered (the signed description says it too; radios act on that)."""
    description: Blob
    """The caller's signed call description, as the caller sent it."""
    ice_servers: IceServerList = ()
    """ICE servers (with this callee's TURN credentials) to answer with."""


class CallRinging(_Message, frozen=True, kw_only=True):
    """Callee -> server -> caller: the callee's radio is ringing (manual commencement)."""

    call_id: CallId
    """The call that rings."""


class CallAnswer(_Message, frozen=True, kw_only=True):
    """Callee -> server -> caller: the call is accepted (TS 23.379 private call response)."""

    call_id: CallId
    """The call answered."""
    description: Blob
    """The callee's signed call description (SDP answer)."""


class CallEnd(_Message, frozen=True, kw_only=True):
    """Either way: the call is over, refused or failed; the relay relays it to the other side and
    sends its own (no answer, peer gone, busy...)."""

    call_id: CallId
    """The call that ended."""
    reason: EndReason
    """``END_*``: hang-up, refusal, failure, or the relay's own reason."""
    text: Text = ""
    """What happened, for a person ("alice's radio refused the call: ...")."""


class CallTalk(_Message, frozen=True, kw_only=True):
    """Client -> server, half-duplex calls: press (``talking``) or release the call's floor."""

    call_id: CallId
    """The half-duplex call."""
    talking: bool
    """Pressed (True) or released."""


class CallTalker(_Message, frozen=True, kw_only=True):
    """Server -> both parties of a half-duplex call: who may talk now (empty: nobody)."""

    call_id: CallId
    """The half-duplex call."""
    user_id: Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)] = ""
    """Who holds the call's floor."""


class CallLogRequest(_Message, frozen=True, kw_only=True):
    """Client -> server: the latest private calls (own calls; every call for a dispatcher)."""

    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    """How many calls, newest first."""


class CallRecord(_Part, frozen=True, kw_only=True):
    """One private call in the call log (who, when, how long, outcome)."""

    call_id: CallId
    """The caller's id for the call."""
    caller: Id
    """Who called."""
    callee: Id
    """Who was called."""
    mode: CallMode
    """Full or half duplex."""
    emergency: bool
    """An emergency private call."""
    offered_at: Time
    """When the relay got the offer."""
    answered_at: Time | None = None
    """When the callee answered (None: never)."""
    ended_at: Time | None = None
    """When it ended (None: not yet)."""
    outcome: Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)] = ""
    """The end reason (``END_*``), or empty while the call goes on."""
    ended_by: Annotated[str, msgspec.Meta(max_length=MAX_ID_LENGTH)] = ""
    """Who ended it (a user id), or empty when the relay did (timeout, peer gone)."""


class CallLog(_Message, frozen=True, kw_only=True):
    """Server -> client: the answer to :class:`CallLogRequest`, newest first."""

    calls: Annotated[tuple[CallRecord, ...], msgspec.Meta(max_length=200)]
    """The calls, newest first."""
