"""Private calls at the relay (TS 23.379): who may call whom, busy, ringing, hang-up, timeouts.

The relay carries a private call's signalling only; the media goes peer to peer (or through
TURN) under DTLS-SRTP keys the relay never sees. What the relay decides is here, as a pure
table the WebSocket code feeds (messages, session changes and ``now`` in; messages to users
and call-log writes out): the policy, a callee that is offline or busy, an emergency call
that pre-empts the callee's other call, ringing that times out, a party whose session ends,
an offer flood, and the floor of a half-duplex call.

A call is *ringing* from the offer until the callee answers, then *answered* until either
side ends it. Each user is in at most one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from crypto.identity import Role
from ptt_protocol import control
from ptt_server.policy import may_call
from ptt_server.ratelimit import TokenBucket

__all__ = [
    "CallAnswered",
    "CallEffect",
    "CallEnded",
    "CallOffered",
    "CallTable",
    "Elsewhere",
    "EndElsewhere",
    "PrivateCall",
    "SendTo",
]

RING_TIMEOUT: Final = 30.0
"""Seconds a manual-commencement call rings before it ends unanswered."""
ANSWER_TIMEOUT: Final = 10.0
"""Seconds an automatic-commencement call waits for the callee's radio to answer."""
OFFERS_PER_S: Final = 0.5
OFFER_BURST: Final = 3.0
EMERGENCY_OFFERS_PER_S: Final = 0.1
EMERGENCY_OFFER_BURST: Final = 5.0
"""Emergency calls skip the ordinary budget (an officer in peril is never told to wait for
having called colleagues) but have their own: each one pre-empts its callee's call, rings at
once and writes a log row, so without a bound one member could flood them."""


@dataclass(slots=True)
class PrivateCall:
    """One call the relay knows, from the offer to its end."""

    call_id: bytes
    caller: str
    callee: str
    mode: control.CallMode
    commencement: control.Commencement
    emergency: bool
    offered_at: float
    deadline: float
    """When it ends unanswered (ringing calls only)."""
    answered_at: float | None = None
    talker: str = ""
    """Half-duplex: who holds the call's floor ("" for nobody)."""

    def other(self, user: str) -> str:
        return self.callee if user == self.caller else self.caller


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send ``message`` to ``user``'s session (if it still has one)."""

    user: str
    message: control.Message


@dataclass(frozen=True, slots=True)
class CallOffered:
    """Log a new call attempt (also the ones refused at once: busy, offline, not allowed)."""

    call: PrivateCall


@dataclass(frozen=True, slots=True)
class CallAnswered:
    call_id: bytes
    at: float


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: bytes
    at: float
    outcome: control.EndReason
    ended_by: str
    """The user who ended it, or "" when the relay did."""


@dataclass(frozen=True, slots=True)
class EndElsewhere:
    """End ``user``'s call ``call_id``, which another node of the cluster owns (an emergency
    call pre-empts it): the user's own node tells the user and that owner."""

    user: str
    call_id: bytes
    text: str


CallEffect = SendTo | CallOffered | CallAnswered | CallEnded | EndElsewhere


@dataclass(frozen=True, slots=True)
class Elsewhere:
    """A call a user of this node is in that this table does not hold: in a cluster, the
    caller's node owns it (``ptt_server.cluster.calls``). It makes the user busy as well."""

    call_id: bytes
    emergency: bool


@dataclass(frozen=True, slots=True)
class Party:
    """What the relay knows of a user at the time of an offer."""

    user_id: str
    role: Role | None
    """``None``: no such enrolled user."""
    online: bool
    display_name: str = ""
    elsewhere: Elsewhere | None = None
    """The user's call owned by another node (always None on one node)."""


@dataclass
class CallTable:
    """Every private call in progress at this relay."""

    ring_timeout: float = RING_TIMEOUT
    answer_timeout: float = ANSWER_TIMEOUT
    offers_per_s: float = OFFERS_PER_S
    offer_burst: float = OFFER_BURST
    emergency_offers_per_s: float = EMERGENCY_OFFERS_PER_S
    emergency_offer_burst: float = EMERGENCY_OFFER_BURST
    _calls: dict[bytes, PrivateCall] = field(default_factory=dict)
    _by_user: dict[str, bytes] = field(default_factory=dict)
    _buckets: dict[tuple[str, bool], TokenBucket] = field(default_factory=dict)
    """Offer budgets by (caller, emergency)."""

    def call_of(self, user: str) -> PrivateCall | None:
        """The call ``user`` is in (ringing or answered), if any."""
        call_id = self._by_user.get(user)
        return None if call_id is None else self._calls[call_id]

    def get(self, call_id: bytes) -> PrivateCall | None:
        """The call of this id, if it is in progress here."""
        return self._calls.get(call_id)

    def __len__(self) -> int:
        return len(self._calls)

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has something to do."""
        ringing = [c.deadline for c in self._calls.values() if c.answered_at is None]
        return min(ringing, default=None)

    # --- inputs -----------------------------------------------------------------------------

    def offer(
        self,
        caller: Party,
        callee: Party,
        message: control.CallOffer,
        now: float,
        ice_servers: tuple[control.IceServer, ...] = (),
        *,
        id_logged: bool = False,
    ) -> list[CallEffect]:
        """``caller`` sends ``message``; ``ice_servers`` are the callee's, if it rings.
        ``id_logged``: the call log already holds ``message.call_id`` (an ended call's)."""
        assert caller.role is not None
        key = (caller.user_id, message.emergency)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate, burst = (
                (self.emergency_offers_per_s, self.emergency_offer_burst)
                if message.emergency
                else (self.offers_per_s, self.offer_burst)
            )
            bucket = self._buckets[key] = TokenBucket(rate, burst, now)
        if not bucket.take(now):
            what = "emergency calls" if message.emergency else "calls"
            return [
                _end_to(
                    caller.user_id,
                    message.call_id,
                    control.END_RATE_LIMITED,
                    f"too many {what}: wait {bucket.ready_at() - now:.0f} s and call again",
                )
            ]
        # An ended call's id too: its log row is updated by call id, so a new call under it
        # would go unlogged and mark the old call answered or ended as the new one goes.
        if message.call_id in self._calls or id_logged:
            return [
                _end_to(
                    caller.user_id,
                    message.call_id,
                    control.END_FAILED,
                    "this call id is in use: the radio must choose a new one",
                )
            ]
        call = PrivateCall(
            call_id=message.call_id,
            caller=caller.user_id,
            callee=callee.user_id,
            mode=message.mode,
            commencement=message.commencement,
            emergency=message.emergency,
            offered_at=now,
            deadline=now
            + (
                self.ring_timeout
                if message.commencement == control.COMMENCEMENT_MANUAL
                else self.answer_timeout
            ),
        )
        refusal = self._refusal(caller, callee, call)
        if refusal is not None:
            reason, text = refusal
            return [
                CallOffered(call),
                CallEnded(call.call_id, now, reason, ""),
                _end_to(caller.user_id, call.call_id, reason, text),
            ]
        effects: list[CallEffect] = []
        preempted = f"ended for an emergency call from {caller.user_id} to {callee.user_id}"
        for party in (caller, callee):
            current = self.call_of(party.user_id)
            if current is not None:  # an emergency call pre-empts (checked in _refusal)
                effects += self._end(current, now, control.END_PREEMPTED, preempted, ended_by="")
            elif party.elsewhere is not None:
                effects.append(EndElsewhere(party.user_id, party.elsewhere.call_id, preempted))
        self._calls[call.call_id] = call
        self._by_user[call.caller] = call.call_id
        self._by_user[call.callee] = call.call_id
        effects.append(CallOffered(call))
        effects.append(
            SendTo(
                callee.user_id,
                control.CallIncoming(
                    call_id=call.call_id,
                    from_user=caller.user_id,
                    display_name=caller.display_name,
                    mode=message.mode,
                    commencement=message.commencement,
                    emergency=message.emergency,
                    description=message.description,
                    ice_servers=ice_servers,
                ),
            )
        )
        return effects

    def _refusal(
        self, caller: Party, callee: Party, call: PrivateCall
    ) -> tuple[control.EndReason, str] | None:
        assert caller.role is not None
        if callee.role is None:
            return control.END_FORBIDDEN, f"no user {callee.user_id!r} in this organisation"
        if caller.user_id == callee.user_id:
            return control.END_FORBIDDEN, "a radio cannot call itself"
        if not may_call(caller.role, callee.role):
            return (
                control.END_FORBIDDEN,
                f"an {caller.role.value} may not call {callee.user_id} ({callee.role.value}): "
                "ask a dispatcher",
            )
        if not callee.online:
            return control.END_OFFLINE, f"{callee.user_id} is not logged in: send a text instead"
        busy = self.call_of(callee.user_id) or callee.elsewhere
        if busy is not None and (not call.emergency or busy.emergency):
            return control.END_BUSY, f"{callee.user_id} is in another call"
        mine = self.call_of(caller.user_id) or caller.elsewhere
        if mine is not None and not call.emergency:
            return control.END_BUSY, "you are in a call already: hang up first"
        return None

    def ringing(self, user: str, message: control.CallRinging) -> list[CallEffect]:
        """The callee's radio rings: tell the caller."""
        call = self._calls.get(message.call_id)
        if call is None or call.callee != user or call.answered_at is not None:
            return []
        return [SendTo(call.caller, message)]

    def answer(self, user: str, message: control.CallAnswer, now: float) -> list[CallEffect]:
        """The callee accepts: relay its signed answer to the caller."""
        call = self._calls.get(message.call_id)
        if call is None or call.callee != user or call.answered_at is not None:
            return [_end_to(user, message.call_id, control.END_FAILED, "no such call ringing here")]
        call.answered_at = now
        return [CallAnswered(call.call_id, now), SendTo(call.caller, message)]

    def end(self, user: str, message: control.CallEnd, now: float) -> list[CallEffect]:
        """``user`` hangs up, refuses, or reports that the call failed on its side."""
        call = self._calls.get(message.call_id)
        if call is None or user not in (call.caller, call.callee):
            return []  # already over (both hung up at once), or not this user's: nothing to do
        outcome = message.reason
        if outcome not in (control.END_HANGUP, control.END_REFUSED, control.END_FAILED):
            outcome = control.END_HANGUP  # a radio does not speak for the relay (busy, gone...)
        return self._end(call, now, outcome, message.text, ended_by=user)

    def talk(self, user: str, message: control.CallTalk) -> list[CallEffect]:
        """Half-duplex: ``user`` presses or releases; the first to press holds the floor."""
        call = self._calls.get(message.call_id)
        if (
            call is None
            or user not in (call.caller, call.callee)
            or call.answered_at is None
            or call.mode != control.CALL_HALF_DUPLEX
        ):
            return []
        if message.talking and call.talker == "":
            call.talker = user
        elif not message.talking and call.talker == user:
            call.talker = ""
        else:
            # Pressed while the other talks, or a release of nothing: tell the presser again.
            return [SendTo(user, control.CallTalker(call_id=call.call_id, user_id=call.talker))]
        state = control.CallTalker(call_id=call.call_id, user_id=call.talker)
        return [SendTo(call.caller, state), SendTo(call.callee, state)]

    def user_gone(self, user: str, now: float) -> list[CallEffect]:
        """``user``'s session ended (its radio vanished, or logged in elsewhere)."""
        call = self.call_of(user)
        if call is None:
            return []
        # Only the other party is told: a new session of ``user`` (a login that took over)
        # never had this call, and its first message must be its LoginOk.
        return self.end_for(
            user, call.call_id, control.END_PEER_GONE, f"{user}'s radio lost its connection", now
        )

    def end_for(
        self, user: str, call_id: bytes, outcome: control.EndReason, text: str, now: float
    ) -> list[CallEffect]:
        """The relay on ``user``'s side ends the call (``user`` is gone, busy or offline, or
        its call was pre-empted): only the other party is told, the log says "the relay".

        In a cluster, ``user``'s node says so for a call the caller's node owns; ``user``'s
        node has told ``user`` itself (``ptt_server.cluster.calls``)."""
        call = self._calls.get(call_id)
        if call is None or user not in (call.caller, call.callee):
            return []
        effects = self._end(call, now, outcome, text, ended_by="")
        return [e for e in effects if not (isinstance(e, SendTo) and e.user == user)]

    def expire(self, now: float) -> list[CallEffect]:
        """End the calls that rang too long."""
        effects: list[CallEffect] = []
        for call in [c for c in self._calls.values() if c.answered_at is None]:
            if now >= call.deadline:
                effects += self._end(
                    call, now, control.END_NO_ANSWER, f"{call.callee} did not answer", ended_by=""
                )
        return effects

    # --- internals --------------------------------------------------------------------------

    def _end(
        self,
        call: PrivateCall,
        now: float,
        outcome: control.EndReason,
        text: str,
        *,
        ended_by: str,
    ) -> list[CallEffect]:
        del self._calls[call.call_id]
        for user in (call.caller, call.callee):
            if self._by_user.get(user) == call.call_id:
                del self._by_user[user]
        told = [call.caller, call.callee] if ended_by == "" else [call.other(ended_by)]
        return [
            CallEnded(call.call_id, now, outcome, ended_by),
            *(_end_to(user, call.call_id, outcome, text) for user in told),
        ]


def _end_to(user: str, call_id: bytes, reason: control.EndReason, text: str) -> SendTo:
    return SendTo(
        user,
        control.CallEnd(call_id=call_id, reason=reason, text=text),
    )
