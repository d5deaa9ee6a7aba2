"""Private calls between radios on different nodes (real NATS, shared PostgreSQL, real aiortc).

The caller's node owns each call (:mod:`ptt_server.cluster.calls`): it rings the callee on
the callee's node, which decides busy and emergency pre-emption and forwards what the
callee's radio says on the call's subject. Each test places calls with real radios on
three in-process nodes; the media goes peer to peer on 127.0.0.1 as on one node.
"""

from __future__ import annotations

import asyncio
import os

import nats
import pytest

from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from ptt_server.cluster import wire
from ptt_server.server import RelayServer
from tests.calls_fixture import loopback_ice
from tests.clusterfixture import Cluster
from tests.orgfixture import user_record
from tests.ptt_client.calls.pair import RecordingOutput, speech_pcm, wav_source
from tests.ptt_client.speech import similarity

__all__ = ["loopback_ice"]


async def ended(radio: RadioClient, reason: str | None = None) -> events.CallEnded:
    return await radio.wait_for(
        events.CallEnded, lambda e: reason is None or e.reason == reason, timeout=15
    )


def calls_of(node: RelayServer) -> tuple[int, int, int]:
    """(calls the node's table holds, its legs, the call subjects it listens on)."""
    assert node.cluster is not None
    return len(node.calls), len(node.cluster.calls.legs), len(node.cluster.calls._owned)


def refused_calls(node: RelayServer) -> int:
    value = node.metrics.registry.get_sample_value(
        "fieldradio_bus_refused_total", {"subject": "call"}
    )
    return int(value or 0)


async def test_a_call_across_nodes_rings_connects_carries_speech_and_ends_from_either_side(
    cluster: Cluster,
) -> None:
    alice = await cluster.radio("alice", 0, affiliate=False)
    bob = await cluster.radio("bob", 1, affiliate=False)
    heard_by_bob, heard_by_alice = RecordingOutput(), RecordingOutput()
    alice.calls.audio = lambda call: (wav_source(0), heard_by_alice)
    bob.calls.audio = lambda call: (wav_source(1), heard_by_bob)
    bob.calls.auto_answer = False
    first = await alice.calls.dial("bob", commencement=control.COMMENCEMENT_MANUAL)
    alerted = await bob.wait_for(events.CallAlerting, lambda e: not e.outgoing)
    assert (alerted.peer, alerted.display_name) == ("alice", "Alice Adams")
    await alice.wait_for(events.CallAlerting, lambda e: e.outgoing)  # bob's ringing came back
    assert calls_of(cluster.nodes[0]) == (1, 0, 1) and calls_of(cluster.nodes[1]) == (0, 1, 0)
    await bob.calls.accept()
    await alice.wait_for(events.CallConnected, timeout=10)
    await bob.wait_for(events.CallConnected, timeout=10)
    async with asyncio.timeout(15):
        await heard_by_bob.wait_for(len(speech_pcm(0)))
        await heard_by_alice.wait_for(len(speech_pcm(1)))
    assert similarity(speech_pcm(0), heard_by_bob.pcm()) > 0.8
    assert similarity(speech_pcm(1), heard_by_alice.pcm()) > 0.8
    await alice.calls.hangup()
    end = await ended(bob)
    assert (end.reason, end.peer) == (control.END_HANGUP, "alice") and "alice hung up" in end.text
    # The callee hangs up the next one: its end goes to the owner through the call subject.
    bob.calls.auto_answer = True
    second = await alice.calls.dial("bob")
    await alice.wait_for(events.CallConnected, lambda e: e.peer == "bob", timeout=10)
    await bob.calls.hangup()
    assert (await ended(alice)).reason == control.END_HANGUP
    log = {row.call_id: row for row in await cluster.nodes[2].store.call_log(None, 10)}
    assert set(log) == {first.call_id, second.call_id}  # one row per call
    assert (log[first.call_id].outcome, log[first.call_id].ended_by) == ("hangup", "alice")
    assert (log[second.call_id].outcome, log[second.call_id].ended_by) == ("hangup", "bob")
    for row in log.values():
        assert row.answered_at is not None and row.ended_at is not None
        assert row.offered_at <= row.answered_at <= row.ended_at
    # Nothing is left behind on any node (no leg keeps bob busy, no subject held).
    for node in cluster.nodes:
        assert calls_of(node) == (0, 0, 0)


async def test_busy_holds_across_nodes_and_an_emergency_call_preempts_whoever_owns_the_call(
    cluster: Cluster,
) -> None:
    alice = await cluster.radio("alice", 0, affiliate=False)
    bob = await cluster.radio("bob", 1, affiliate=False)
    carol = await cluster.radio("carol", 2, affiliate=False)
    disp = await cluster.radio("disp", 0, affiliate=False)
    # Carol (node 2) calls bob (node 1): node 2 owns the call, node 1 holds bob's leg.
    carols = await carol.calls.dial("bob")
    await carol.wait_for(events.CallConnected, timeout=10)
    await bob.wait_for(events.CallConnected, timeout=10)
    await alice.calls.dial("bob")  # bob's node says busy
    end = await ended(alice)
    assert end.reason == control.END_BUSY and "bob is in another call" in end.text
    await alice.calls.dial("carol")  # the caller of a call owned by node 2 is busy too
    assert (await ended(alice)).reason == control.END_BUSY
    await disp.calls.dial("bob")  # a local caller of node 0, same answer
    assert (await ended(disp)).reason == control.END_BUSY
    assert bob.calls.active is not None and bob.calls.active.peer == "carol"
    # An emergency call from node 0 pre-empts the call node 2 owns.
    await alice.calls.dial("bob", emergency=True)
    assert (await ended(carol)).reason == control.END_PREEMPTED
    up = await bob.wait_for(events.CallConnected, lambda e: e.peer == "alice", timeout=10)
    assert up.emergency
    rows = {row.call_id: row for row in await cluster.nodes[1].store.call_log(None, 10)}
    assert (rows[carols.call_id].outcome, rows[carols.call_id].ended_by) == ("preempted", "")
    assert sorted(row.outcome for row in rows.values()) == ["", "busy", "busy", "busy", "preempted"]
    # Bob is in alice's emergency call now; when he calls carol, his node owns that call,
    # and an emergency call from disp (node 0) pre-empts it there.
    await alice.calls.hangup()
    await ended(bob)
    bobs = await bob.calls.dial("carol")
    await carol.wait_for(events.CallConnected, lambda e: e.peer == "bob", timeout=10)
    await disp.calls.dial("bob", emergency=True)
    assert (await ended(carol)).reason == control.END_PREEMPTED
    await disp.wait_for(events.CallConnected, lambda e: e.peer == "bob", timeout=10)
    (row,) = [
        r for r in await cluster.nodes[0].store.call_log(None, 10) if r.call_id == bobs.call_id
    ]
    assert row.outcome == control.END_PREEMPTED


async def test_refusals_across_nodes_are_the_ones_of_one_node(cluster: Cluster) -> None:
    org = cluster.org
    await cluster.nodes[0].store.put_user(user_record(org.admin))  # as ptt-admin enrols it
    for node in cluster.nodes:
        node.calls.offer_burst = 10
    alice = await cluster.radio("alice", 0, affiliate=False)
    await alice.calls.dial("admin")
    end = await ended(alice)
    assert end.reason == control.END_FORBIDDEN and "may not call admin" in end.text
    await alice.calls.dial("nobody")
    assert (await ended(alice)).reason == control.END_FORBIDDEN
    await alice.calls.dial("bob")  # logged in on no node: nobody answers its ring
    end = await ended(alice)
    assert end.reason == control.END_OFFLINE and "not logged in" in end.text
    bob = await cluster.radio("bob", 2, affiliate=False)
    await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    outcomes = [row.outcome for row in await cluster.nodes[1].store.call_log(None, 10)]
    assert outcomes == ["", "offline", "forbidden", "forbidden"]  # newest first


async def test_the_owner_node_stopping_ends_the_callees_call(cluster: Cluster) -> None:
    alice = await cluster.radio("alice", 0, affiliate=False)
    bob = await cluster.radio("bob", 1, affiliate=False)
    call = await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    await cluster.nodes[0].stop()
    end = await ended(bob)
    assert end.reason in (control.END_PEER_GONE, control.END_FAILED), end
    assert calls_of(cluster.nodes[1]) == (0, 0, 0)
    (row,) = await cluster.nodes[1].store.call_log(None, 5)
    assert row.call_id == call.call_id and row.outcome == control.END_PEER_GONE


async def test_an_owner_gone_from_the_bus_is_found_by_the_probes_on_both_sides(
    cluster: Cluster,
) -> None:
    """Node 0 vanishes from the bus but its radios stay up (media too): only the probes of
    the call's subject can tell node 1, and the missing probes node 0."""
    alice = await cluster.radio("alice", 0, affiliate=False)
    bob = await cluster.radio("bob", 1, affiliate=False)
    call = await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    owner = cluster.nodes[0].cluster
    assert owner is not None and owner.nc is not None
    await owner.nc.close()
    end = await ended(bob)
    assert end.reason == control.END_PEER_GONE and "alice's relay node is gone" in end.text
    # Alice's side ends too: node 0 hears no probe from bob's node any more, or (first,
    # usually) her radio sees bob's radio close the media and hangs up.
    await ended(alice)
    await alice.ping_server()  # node 0 has read what her radio sent before the pong
    (row,) = await cluster.nodes[1].store.call_log(None, 5)
    assert row.call_id == call.call_id and row.outcome == control.END_PEER_GONE
    assert calls_of(cluster.nodes[0])[0] == 0 and calls_of(cluster.nodes[1]) == (0, 0, 0)


async def test_a_row_left_open_by_a_dead_node_is_closed_by_a_sweep_not_a_live_one(
    cluster: Cluster,
) -> None:
    alice = await cluster.radio("alice", 0, affiliate=False)
    bob = await cluster.radio("bob", 1, affiliate=False)
    live = await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    dead = control.CallRecord(
        call_id=os.urandom(16),
        caller="carol",
        callee="disp",
        mode=control.CALL_FULL_DUPLEX,
        emergency=False,
        offered_at=1_000.0,
    )
    await cluster.nodes[2].store.log_call(dead)  # as if its owner died with both parties
    sweeper = cluster.nodes[2].cluster
    assert sweeper is not None
    assert await sweeper.calls.sweep() == 1
    rows = {row.call_id: row for row in await cluster.nodes[2].store.call_log(None, 5)}
    assert rows[dead.call_id].outcome == "relay_restarted"
    assert rows[live.call_id].ended_at is None  # node 0 still carries it
    assert bob.calls.active is not None


async def test_garbage_on_a_calls_subject_is_refused_counted_and_harmless(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await cluster.radio("alice", 0, affiliate=False)
    bob = await cluster.radio("bob", 1, affiliate=False)
    call = await alice.calls.dial("bob")
    await bob.wait_for(events.CallConnected, timeout=10)
    owner = cluster.nodes[0]
    assert owner.cluster is not None
    refusal = asyncio.Event()
    real_refused = owner.cluster.refused

    def spy(subject: str, reason: str) -> None:
        real_refused(subject, reason)
        refusal.set()

    monkeypatch.setattr(owner.cluster, "refused", spy)
    before = refused_calls(owner)
    subject = wire.call_subject(call.call_id)
    offer = control.CallOffer(call_id=call.call_id, to_user="bob", description=b"x")
    other_call = wire.CallOp(call_id=b"z" * 16, user_id="bob")
    garbage = [
        b"\xc1 not msgpack",
        wire.encode(other_call),  # about another call than its subject's
        wire.encode(wire.CallOp(call_id=call.call_id, user_id="alice")),  # not the callee
        wire._ENCODER.encode(  # a CallOffer dressed as a callee's message
            {
                "type": "call-op",
                "call_id": call.call_id,
                "user_id": "bob",
                "message": control.encode(offer),
            }
        ),
        wire.encode(  # a hang-up that tries to speak for the relay twice over
            wire.CallOp(
                call_id=call.call_id,
                user_id="bob",
                relay_end="peer_gone",
                message=control.encode(control.CallEnd(call_id=call.call_id, reason="hangup")),
            )
        ),
    ]
    nc = await nats.connect(cluster.nats.url)
    try:
        for data in garbage:
            await nc.publish(subject, data)
        await nc.flush()
        async with asyncio.timeout(10):
            while refused_calls(owner) < before + len(garbage):
                await refusal.wait()
                refusal.clear()
    finally:
        await nc.close()
    assert refused_calls(owner) == before + len(garbage)
    # The call is untouched: still up on both sides, and it ends normally.
    assert alice.calls.active is not None and bob.calls.active is not None
    await bob.calls.hangup()
    assert (await ended(alice)).reason == control.END_HANGUP
