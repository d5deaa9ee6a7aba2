"""An evil relay tries to sit in the middle of private calls; every attempt fails closed.

The relay below is the real one with its call handlers wrapped: it rewrites what it relays
the way an operator who wants to hear a call would. Each test shows the call ends on both
radios with a message that says why, and that no media came up.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from crypto import call_description as signed_descriptions
from crypto.call_description import CallDescription, sign_call_description
from crypto.identity import OrgRoot, Role
from ptt_client import events
from ptt_client.calls import CallMedia, IceSettings
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.handlers import HANDLERS
from ptt_server.server import RelayServer
from tests.credentials import issue
from tests.orgfixture import Org, joined_radio

Rewrite = Callable[[Any], Awaitable[Any]]


@pytest.fixture
async def pair(org: Org, server: RelayServer) -> AsyncIterator[tuple[RadioClient, RadioClient]]:
    alice = await joined_radio(org, server, "alice")
    bob = await joined_radio(org, server, "bob")
    try:
        yield alice, bob
    finally:
        await alice.stop()
        await bob.stop()


def evil(monkeypatch: pytest.MonkeyPatch, kind: type[control.Message], rewrite: Rewrite) -> None:
    """The relay rewrites every ``kind`` message it relays."""
    honest = HANDLERS[kind]

    async def handler(server: Any, session: Any, message: Any, now: float) -> None:
        await honest(server, session, await rewrite(message), now)

    monkeypatch.setitem(HANDLERS, kind, handler)


def opened(blob: bytes) -> Any:
    return signed_descriptions._DECODER.decode(blob[1:])


def reencoded(body: Any) -> bytes:
    return bytes((signed_descriptions._VERSION,)) + signed_descriptions._ENCODER.encode(body)


async def relay_fingerprint_sdp(sdp: str) -> tuple[str, str]:
    """The relay's own DTLS certificate fingerprint put into ``sdp`` (what a relay that
    terminates DTLS on each side must do)."""
    media = CallMedia(IceSettings(), None, None)
    try:
        algorithm, value = sorted(media.local_fingerprints)[0]
    finally:
        await media.close()
    rewritten = re.sub(
        r"a=fingerprint:sha-256 [0-9A-F:]+", f"a=fingerprint:{algorithm} {value}", sdp
    )
    assert rewritten != sdp
    return rewritten, value


class Watch:
    """Every event of a radio, to show what never happened."""

    def __init__(self, radio: RadioClient) -> None:
        self.seen: list[object] = []
        radio.add_listener(self.seen.append)

    def connected(self) -> bool:
        return any(isinstance(e, events.CallConnected) for e in self.seen)


async def ended(radio: RadioClient) -> events.CallEnded:
    return await radio.wait_for(events.CallEnded, timeout=15)


async def test_a_relay_that_puts_its_own_fingerprint_in_the_offer_is_refused(
    pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = pair
    watch_alice, watch_bob = Watch(alice), Watch(bob)

    async def swap_fingerprint(offer: control.CallOffer) -> control.CallOffer:
        body = opened(offer.description)
        sdp, value = await relay_fingerprint_sdp(body.description.sdp)
        changed = msgspec.structs.replace(
            body.description, sdp=sdp, fingerprints=(("sha-256", value),)
        )
        forged = msgspec.structs.replace(body, description=changed)
        return msgspec.structs.replace(offer, description=reencoded(forged))

    evil(monkeypatch, control.CallOffer, swap_fingerprint)
    await alice.calls.dial("bob")
    at_bob, at_alice = await ended(bob), await ended(alice)
    for end in (at_bob, at_alice):
        assert end.reason == control.END_FAILED
        assert "offer from alice refused" in end.text and "bad signature" in end.text, end
    assert not watch_alice.connected() and not watch_bob.connected()
    assert alice.calls.active is None and bob.calls.active is None


async def test_a_relay_that_rewrites_the_answer_is_refused_by_the_caller(
    pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = pair
    watch_alice = Watch(alice)

    async def swap_sdp(answer: control.CallAnswer) -> control.CallAnswer:
        body = opened(answer.description)
        sdp, _value = await relay_fingerprint_sdp(body.description.sdp)
        forged = msgspec.structs.replace(
            body, description=msgspec.structs.replace(body.description, sdp=sdp)
        )
        return msgspec.structs.replace(answer, description=reencoded(forged))

    evil(monkeypatch, control.CallAnswer, swap_sdp)
    await alice.calls.dial("bob")
    at_alice = await ended(alice)
    assert at_alice.reason == control.END_FAILED
    assert "answer from bob refused" in at_alice.text and "bad signature" in at_alice.text
    at_bob = await ended(bob)  # alice says why, through the relay
    assert "answer from bob refused" in at_bob.text
    assert not watch_alice.connected()


async def test_a_relay_cannot_sign_for_a_member_with_a_key_of_its_own(
    org: Org, pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The relay makes its own "alice" (a root of its own) and signs its own SDP."""
    alice, bob = pair
    fake_root = OrgRoot.generate()
    fake_alice = issue(fake_root, "alice", Role.OFFICER, serial=1)

    async def own_offer(offer: control.CallOffer) -> control.CallOffer:
        body = opened(offer.description).description
        sdp, value = await relay_fingerprint_sdp(body.sdp)
        mine = msgspec.structs.replace(body, sdp=sdp, fingerprints=(("sha-256", value),))
        return msgspec.structs.replace(offer, description=sign_call_description(mine, *fake_alice))

    evil(monkeypatch, control.CallOffer, own_offer)
    await alice.calls.dial("bob")
    end = await ended(bob)
    assert end.reason == control.END_FAILED and "signer refused" in end.text, end


async def test_a_colluding_member_cannot_sign_for_the_caller(
    org: Org, pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """carol is a real member; the relay swaps alice's offer for one carol signed."""
    alice, bob = pair
    carol = org.accounts["carol"]

    async def carols_offer(offer: control.CallOffer) -> control.CallOffer:
        body = opened(offer.description).description
        as_carol = msgspec.structs.replace(body, caller="carol")
        return msgspec.structs.replace(
            offer, description=sign_call_description(as_carol, carol.keys, carol.credential)
        )

    evil(monkeypatch, control.CallOffer, carols_offer)
    await alice.calls.dial("bob")
    end = await ended(bob)
    assert "replayed or redirected" in end.text, end


async def test_a_replayed_offer_under_a_new_call_id_is_refused(
    pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob = pair
    recorded: list[bytes] = []

    async def record_then_replay(offer: control.CallOffer) -> control.CallOffer:
        if not recorded:
            recorded.append(offer.description)
            return offer
        return msgspec.structs.replace(offer, description=recorded[0])

    evil(monkeypatch, control.CallOffer, record_then_replay)
    await alice.calls.dial("bob")
    await alice.wait_for(events.CallConnected, timeout=10)
    await alice.calls.hangup()
    await ended(bob)
    await alice.calls.dial("bob")
    end = await ended(bob)
    assert end.reason == control.END_FAILED and "replayed or redirected" in end.text


async def test_the_relay_cannot_make_an_ordinary_call_an_emergency(
    pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An emergency call is answered at once: the relay's copy of the flag does not count,
    the signed one does."""
    alice, bob = pair
    bob.calls.auto_answer = False

    async def urgent(offer: control.CallOffer) -> control.CallOffer:
        return msgspec.structs.replace(offer, emergency=True)

    evil(monkeypatch, control.CallOffer, urgent)
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    alerting = await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    assert not alerting.emergency
    assert bob.calls.active is not None and bob.calls.active.state == "ringing"
    await bob.calls.refuse()
    await ended(alice)


async def test_the_relay_cannot_make_a_manual_call_answer_itself(
    pair: tuple[RadioClient, RadioClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob answers automatically when the caller asks; alice asked him to ring. The relay's
    copy of the commencement mode does not count, the signed one does."""
    alice, bob = pair
    assert bob.calls.auto_answer

    async def automatic(offer: control.CallOffer) -> control.CallOffer:
        return msgspec.structs.replace(offer, commencement=control.COMMENCEMENT_AUTOMATIC)

    evil(monkeypatch, control.CallOffer, automatic)
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    assert bob.calls.active is not None and bob.calls.active.state == "ringing"
    await bob.calls.refuse()
    await ended(alice)


def test_a_description_cannot_be_made_for_another_signer() -> None:
    """The library itself refuses to sign the other side (the attacks above need a forger)."""
    root = OrgRoot.generate()
    keys, credential = issue(root, "bob", Role.OFFICER, serial=1)
    description = CallDescription(
        call_id=b"c" * 16,
        side="offer",
        caller="alice",
        callee="bob",
        mode="full_duplex",
        emergency=False,
        commencement="automatic",
        sdp="v=0",
        fingerprints=(("sha-256", "AA"),),
        issued_at=time.time(),
    )
    with pytest.raises(Exception, match="cannot sign the offer"):
        sign_call_description(description, keys, credential)


async def test_a_relay_that_never_times_out_a_ringing_call_is_bounded_by_the_radio(
    pair: tuple[RadioClient, RadioClient], server: RelayServer
) -> None:
    alice, bob = pair
    server.calls.ring_timeout = 3600.0  # a relay that lets it ring for ever
    bob.calls.auto_answer = False
    bob.calls.ring_limit = 0.5
    await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    at_bob = await ended(bob)
    assert at_bob.reason == control.END_REFUSED and "not answered within 0.5 s" in at_bob.text
    at_alice = await ended(alice)
    assert at_alice.reason == control.END_REFUSED
