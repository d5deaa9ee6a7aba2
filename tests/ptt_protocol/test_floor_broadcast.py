"""Broadcast group calls on one channel's floor (TS 22.179 6.2.3): one way, overriding
ordinary talk, below emergency and imminent peril. Explicit times, one rule per test."""

import pytest

from ptt_protocol.floor import (
    DenyCause,
    FloorControl,
    FloorDeny,
    FloorGranted,
    FloorIdle,
    FloorInputError,
    FloorQueuePositionInfo,
    FloorRevoke,
    FloorTaken,
    Priority,
)
from tests.ptt_protocol.floor_inputs import DISPATCHER, EMERGENCY, OFFICER, PERIL, PRE_EMPTED

IN_PROGRESS = DenyCause.BROADCAST_IN_PROGRESS


def broadcasting(holder: str = "disp", now: float = 0.0) -> FloorControl:
    fc = FloorControl()
    fc.request(holder, DISPATCHER, now, broadcast=True)
    return fc


def test_the_cause_reads_as_a_broadcast_in_progress() -> None:
    assert IN_PROGRESS.phrase == "Broadcast in progress"
    assert str(FloorDeny("amy", IN_PROGRESS)) == (
        "Floor Deny to=amy cause=#200 'Broadcast in progress'"
    )
    assert str(FloorTaken("disp", DISPATCHER, 1, broadcast=True)).endswith(" broadcast")


def test_an_idle_floor_is_granted_to_a_broadcast_marked_as_one() -> None:
    fc = FloorControl()
    assert fc.request("disp", DISPATCHER, 0.0, broadcast=True) == [
        FloorGranted("disp", 1, 60.0, DISPATCHER, broadcast=True),
        FloorTaken("disp", DISPATCHER, 1, broadcast=True),
    ]
    assert fc.holder == "disp" and fc.broadcast and fc.holder_priority is DISPATCHER


@pytest.mark.parametrize("talker", [OFFICER, DISPATCHER])
def test_a_broadcast_pre_empts_ordinary_talk(talker: Priority) -> None:
    fc = FloorControl()
    fc.request("amy", talker, 0.0)
    assert fc.request("disp", DISPATCHER, 1.0, broadcast=True) == [
        FloorRevoke("amy", PRE_EMPTED, grace=0.0),
        FloorGranted("disp", 2, 60.0, DISPATCHER, broadcast=True),
        FloorTaken("disp", DISPATCHER, 2, broadcast=True),
    ]
    assert fc.may_send("disp") and not fc.may_send("amy")


@pytest.mark.parametrize("talker", [PERIL, EMERGENCY])
def test_a_broadcast_neither_pre_empts_nor_queues_behind_a_higher_call(talker: Priority) -> None:
    fc = FloorControl()
    fc.request("amy", talker, 0.0)
    assert fc.request("disp", DISPATCHER, 1.0, broadcast=True) == [
        FloorDeny("disp", DenyCause.ANOTHER_MCPTT_CLIENT_HAS_PERMISSION)
    ]
    assert fc.holder == "amy" and fc.queue == [] and not fc.broadcast


@pytest.mark.parametrize("priority", [OFFICER, DISPATCHER])
def test_ordinary_requests_during_a_broadcast_are_denied_not_queued(priority: Priority) -> None:
    fc = broadcasting()
    assert fc.request("amy", priority, 1.0) == [FloorDeny("amy", IN_PROGRESS)]
    assert fc.queue == [] and fc.holder == "disp"


def test_a_second_broadcast_does_not_pre_empt_the_first() -> None:
    fc = broadcasting()
    assert fc.request("disp2", DISPATCHER, 1.0, broadcast=True) == [FloorDeny("disp2", IN_PROGRESS)]
    assert fc.holder == "disp"


@pytest.mark.parametrize("priority", [PERIL, EMERGENCY])
def test_an_emergency_or_imminent_peril_pre_empts_a_broadcast(priority: Priority) -> None:
    fc = broadcasting()
    assert fc.request("amy", priority, 1.0) == [
        FloorRevoke("disp", PRE_EMPTED, grace=0.0),
        FloorGranted("amy", 2, 60.0 if priority is PERIL else None, priority),
        FloorTaken("amy", priority, 2),
    ]
    assert not fc.broadcast
    # Once the emergency ends the floor is ordinary again: requests queue as before.
    fc.request("bob", OFFICER, 2.0)
    assert fc.queue == [("bob", OFFICER)]


def test_requests_waiting_when_a_broadcast_takes_the_floor_are_refused() -> None:
    fc = FloorControl()
    fc.request("amy", OFFICER, 0.0)
    assert fc.request("bob", OFFICER, 0.5) == [FloorQueuePositionInfo("bob", 1)]
    events = fc.request("disp", DISPATCHER, 1.0, broadcast=True)
    assert FloorDeny("bob", IN_PROGRESS) in events and fc.queue == []
    # Nobody is granted when the broadcast ends: the floor goes idle.
    assert fc.release("disp", 2.0) == [FloorIdle()]


def test_a_holder_turning_its_talk_into_a_broadcast_tells_the_channel() -> None:
    fc = FloorControl()
    fc.request("disp", DISPATCHER, 0.0)
    fc.request("amy", OFFICER, 0.5)
    assert fc.request("disp", DISPATCHER, 1.0, broadcast=True) == [
        FloorGranted("disp", 1, 59.0, DISPATCHER, broadcast=True),
        FloorTaken("disp", DISPATCHER, 1, broadcast=True),
        FloorDeny("amy", IN_PROGRESS),
    ]
    assert fc.broadcast and fc.burst_id == 1


def test_a_repeated_broadcast_request_answers_again_without_a_new_burst() -> None:
    fc = broadcasting()
    assert fc.request("disp", DISPATCHER, 1.0, broadcast=True) == [
        FloorGranted("disp", 1, 59.0, DISPATCHER, broadcast=True)
    ]


def test_a_broadcast_ends_like_any_burst_and_leaves_an_ordinary_floor() -> None:
    fc = broadcasting()
    assert fc.release("disp", 1.0) == [FloorIdle()]
    assert not fc.broadcast
    assert fc.request("amy", OFFICER, 2.0) == [
        FloorGranted("amy", 2, 30.0, OFFICER),
        FloorTaken("amy", OFFICER, 2),
    ]


def test_a_silent_broadcast_ends_on_t1() -> None:
    fc = broadcasting()
    assert fc.tick(4.0) == [FloorIdle()]
    assert not fc.broadcast and fc.holder is None


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_a_broadcast_flag_that_is_not_a_bool_is_rejected_and_changes_nothing(bad: object) -> None:
    fc = FloorControl()
    with pytest.raises(FloorInputError):
        fc.request("disp", DISPATCHER, 0.0, broadcast=bad)  # type: ignore[arg-type]
    assert fc.holder is None
