"""The relay's private-call table (ptt_server.call_core): pure, so every rule has its test."""

from __future__ import annotations

from crypto.identity import Role
from ptt_protocol import control
from ptt_server.call_core import (
    CallAnswered,
    CallEffect,
    CallEnded,
    CallOffered,
    CallTable,
    Party,
    SendTo,
)

T0 = 1_000.0
ALICE = Party("alice", Role.OFFICER, online=True, display_name="Alice")
BOB = Party("bob", Role.OFFICER, online=True)
CAROL = Party("carol", Role.OFFICER, online=True)
DISPATCH = Party("dispatch", Role.DISPATCHER, online=True)
ADMIN = Party("admin", Role.ADMIN, online=True)


def offer(
    to: str, call: bytes = b"1" * 16, *, emergency: bool = False, manual: bool = False
) -> control.CallOffer:
    return control.CallOffer(
        call_id=call,
        to_user=to,
        emergency=emergency,
        commencement="manual" if manual else "automatic",
        description=b"signed offer",
    )


def sent(effects: list[CallEffect], user: str) -> list[control.Message]:
    return [e.message for e in effects if isinstance(e, SendTo) and e.user == user]


def ends(effects: list[CallEffect], user: str) -> list[tuple[str, str]]:
    return [(m.reason, m.text) for m in sent(effects, user) if isinstance(m, control.CallEnd)]


def test_an_offer_rings_the_callee_with_its_ice_servers_and_is_logged() -> None:
    table = CallTable()
    ice = (control.IceServer(urls=("turn:127.0.0.1:3478",), username="u", credential="p"),)
    effects = table.offer(ALICE, BOB, offer("bob"), T0, ice)
    (incoming,) = sent(effects, "bob")
    assert isinstance(incoming, control.CallIncoming)
    assert (incoming.from_user, incoming.display_name, incoming.description) == (
        "alice",
        "Alice",
        b"signed offer",
    )
    assert incoming.ice_servers == ice
    assert any(isinstance(e, CallOffered) for e in effects)
    assert table.call_of("alice") is table.call_of("bob") is not None


def test_answer_relays_to_the_caller_and_only_the_callee_may_answer() -> None:
    table = CallTable()
    table.offer(ALICE, BOB, offer("bob"), T0)
    answer = control.CallAnswer(call_id=b"1" * 16, description=b"signed answer")
    stolen = table.answer("carol", answer, T0 + 1)
    assert ends(stolen, "carol")[0][0] == control.END_FAILED and not sent(stolen, "alice")
    effects = table.answer("bob", answer, T0 + 1)
    assert sent(effects, "alice") == [answer]
    assert CallAnswered(b"1" * 16, T0 + 1) in effects
    # Answered: the ring timer no longer applies.
    assert table.next_deadline() is None and not table.expire(T0 + 1_000)


def test_policy_officers_call_officers_and_dispatchers_dispatchers_call_anyone() -> None:
    table = CallTable()
    refused = table.offer(ALICE, ADMIN, offer("admin"), T0)
    (reason, text) = ends(refused, "alice")[0]
    assert reason == control.END_FORBIDDEN and "may not call admin" in text
    assert not sent(refused, "admin") and table.call_of("alice") is None
    assert CallEnded(b"1" * 16, T0, control.END_FORBIDDEN, "") in refused  # logged
    assert sent(table.offer(ALICE, DISPATCH, offer("dispatch", b"2" * 16), T0), "dispatch")
    assert sent(CallTable().offer(DISPATCH, ADMIN, offer("admin"), T0), "admin")


def test_unknown_offline_and_self_calls_are_refused_with_a_reason() -> None:
    table = CallTable()
    cases = [
        (Party("ghost", None, online=False), "no user 'ghost'", control.END_FORBIDDEN),
        (Party("bob", Role.OFFICER, online=False), "not logged in", control.END_OFFLINE),
        (ALICE, "cannot call itself", control.END_FORBIDDEN),
    ]
    for number, (callee, words, reason) in enumerate(cases):
        effects = table.offer(ALICE, callee, offer(callee.user_id, bytes([number]) * 16), T0)
        got_reason, text = ends(effects, "alice")[0]
        assert got_reason == reason and words in text
    assert len(table) == 0


def test_a_busy_callee_is_refused_and_an_emergency_call_preempts_it() -> None:
    table = CallTable()
    table.offer(ALICE, BOB, offer("bob", b"1" * 16), T0)
    busy = table.offer(CAROL, BOB, offer("bob", b"2" * 16), T0)
    assert ends(busy, "carol")[0][0] == control.END_BUSY and not sent(busy, "bob")
    urgent = table.offer(CAROL, BOB, offer("bob", b"3" * 16, emergency=True), T0 + 1)
    # Both parties of the old call are told it was pre-empted; bob then rings.
    assert ends(urgent, "alice")[0][0] == control.END_PREEMPTED
    bob_got = sent(urgent, "bob")
    assert isinstance(bob_got[0], control.CallEnd) and bob_got[0].reason == control.END_PREEMPTED
    assert isinstance(bob_got[1], control.CallIncoming) and bob_got[1].emergency
    assert table.call_of("alice") is None
    call = table.call_of("bob")
    assert call is not None and call.call_id == b"3" * 16
    # An emergency call is not pre-empted by another one.
    again = table.offer(ALICE, BOB, offer("bob", b"4" * 16, emergency=True), T0 + 2)
    assert ends(again, "alice")[0][0] == control.END_BUSY


def test_a_caller_in_a_call_must_hang_up_first() -> None:
    table = CallTable()
    table.offer(ALICE, BOB, offer("bob", b"1" * 16), T0)
    effects = table.offer(ALICE, CAROL, offer("carol", b"2" * 16), T0)
    assert ends(effects, "alice") == [
        (control.END_BUSY, "you are in a call already: hang up first")
    ]


def test_hangup_from_either_side_tells_the_other_and_frees_both() -> None:
    for who, other in (("alice", "bob"), ("bob", "alice")):
        table = CallTable()
        table.offer(ALICE, BOB, offer("bob"), T0)
        effects = table.end(
            who, control.CallEnd(call_id=b"1" * 16, reason="hangup", text="bye"), T0 + 5
        )
        assert ends(effects, other) == [(control.END_HANGUP, "bye")] and not sent(effects, who)
        assert CallEnded(b"1" * 16, T0 + 5, control.END_HANGUP, who) in effects
        assert table.call_of("alice") is None and table.call_of("bob") is None


def test_a_radio_cannot_end_someone_elses_call_or_claim_the_relays_reasons() -> None:
    table = CallTable()
    table.offer(ALICE, BOB, offer("bob"), T0)
    assert not table.end("carol", control.CallEnd(call_id=b"1" * 16, reason="hangup"), T0)
    assert table.call_of("bob") is not None
    effects = table.end("bob", control.CallEnd(call_id=b"1" * 16, reason="peer_gone"), T0)
    assert ends(effects, "alice")[0][0] == control.END_HANGUP


def test_ringing_goes_to_the_caller_and_an_unanswered_call_times_out() -> None:
    table = CallTable(ring_timeout=30.0, answer_timeout=10.0)
    table.offer(ALICE, BOB, offer("bob", manual=True), T0)
    ring = control.CallRinging(call_id=b"1" * 16)
    assert sent(table.ringing("bob", ring), "alice") == [ring]
    assert not table.ringing("alice", ring)  # only the callee rings
    assert table.next_deadline() == T0 + 30.0
    assert not table.expire(T0 + 29.9)
    effects = table.expire(T0 + 30.0)
    assert ends(effects, "alice")[0][0] == control.END_NO_ANSWER
    assert ends(effects, "bob")[0][0] == control.END_NO_ANSWER
    table.offer(ALICE, BOB, offer("bob", b"2" * 16), T0 + 40)
    assert table.next_deadline() == T0 + 50.0  # automatic commencement: the radio answers


def test_a_vanished_party_ends_the_call_for_the_other() -> None:
    table = CallTable()
    table.offer(ALICE, BOB, offer("bob"), T0)
    effects = table.user_gone("bob", T0 + 3)
    assert ends(effects, "alice")[0][0] == control.END_PEER_GONE
    assert not sent(effects, "bob")  # a new login of bob's never had the call
    assert CallEnded(b"1" * 16, T0 + 3, control.END_PEER_GONE, "") in effects
    assert not table.user_gone("bob", T0 + 4)


def test_an_offer_flood_is_rate_limited_but_not_an_emergency_call_within_its_budget() -> None:
    table = CallTable(offers_per_s=0.5, offer_burst=3)
    reasons = []
    for n in range(6):
        effects = table.offer(
            ALICE, Party(f"u{n}", Role.OFFICER, online=False), offer(f"u{n}", bytes([n]) * 16), T0
        )
        reasons.append(ends(effects, "alice")[0][0])
    assert reasons == [control.END_OFFLINE] * 3 + [control.END_RATE_LIMITED] * 3
    emergency = table.offer(ALICE, BOB, offer("bob", b"9" * 16, emergency=True), T0)
    assert sent(emergency, "bob")
    # The bucket refills with time.
    table.end("alice", control.CallEnd(call_id=b"9" * 16, reason="hangup"), T0)
    assert sent(table.offer(ALICE, BOB, offer("bob", b"8" * 16), T0 + 2.0), "bob")


def test_a_reused_call_id_is_refused() -> None:
    table = CallTable()
    table.offer(ALICE, BOB, offer("bob"), T0)
    effects = table.offer(CAROL, DISPATCH, offer("dispatch"), T0)
    assert ends(effects, "carol")[0][0] == control.END_FAILED and not sent(effects, "dispatch")
    # An ended call's id too (the handler asks the call log): its row would be rewritten.
    table.end("alice", control.CallEnd(call_id=b"1" * 16, reason="hangup"), T0)
    effects = table.offer(CAROL, DISPATCH, offer("dispatch"), T0, id_logged=True)
    assert ends(effects, "carol")[0][0] == control.END_FAILED and not sent(effects, "dispatch")
    assert not any(isinstance(e, CallOffered) for e in effects) and len(table) == 0


def test_half_duplex_the_first_to_press_talks_and_both_are_told() -> None:
    table = CallTable()
    half = control.CallOffer(call_id=b"1" * 16, to_user="bob", mode="half_duplex", description=b"x")
    table.offer(ALICE, BOB, half, T0)
    talk = control.CallTalk(call_id=b"1" * 16, talking=True)
    assert not table.talk("alice", talk)  # not answered yet
    table.answer("bob", control.CallAnswer(call_id=b"1" * 16, description=b"y"), T0)
    effects = table.talk("alice", talk)
    state = control.CallTalker(call_id=b"1" * 16, user_id="alice")
    assert sent(effects, "alice") == sent(effects, "bob") == [state]
    assert sent(table.talk("bob", talk), "bob") == [state]  # bob waits: alice talks
    release = control.CallTalk(call_id=b"1" * 16, talking=False)
    idle = control.CallTalker(call_id=b"1" * 16, user_id="")
    assert sent(table.talk("alice", release), "bob") == [idle]
    assert not table.talk("carol", talk)


def test_an_emergency_offer_flood_is_bounded_too() -> None:
    """Each emergency call pre-empts, rings at once and is logged: one member must not be
    able to send them without end (with fresh ids, to ever more callees)."""
    table = CallTable(emergency_offers_per_s=0.1, emergency_offer_burst=5)
    reasons = []
    for n in range(8):
        effects = table.offer(
            ALICE,
            Party(f"u{n}", Role.OFFICER, online=False),
            offer(f"u{n}", bytes([n]) * 16, emergency=True),
            T0,
        )
        reasons.append(ends(effects, "alice")[0])
    assert [r for r, _ in reasons] == [control.END_OFFLINE] * 5 + [control.END_RATE_LIMITED] * 3
    assert "too many emergency calls: wait 10 s" in reasons[-1][1]
    # Ordinary calls keep their own budget, and the emergency one refills with time.
    assert ends(table.offer(ALICE, BOB, offer("bob", b"a" * 16), T0), "alice") == []
    table.end("alice", control.CallEnd(call_id=b"a" * 16, reason="hangup"), T0)
    later = table.offer(ALICE, BOB, offer("bob", b"b" * 16, emergency=True), T0 + 10.0)
    assert sent(later, "bob")
