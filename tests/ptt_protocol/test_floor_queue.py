"""Floor control of one channel (ptt_protocol.floor), one test per rule, explicit times: release,
cancel and disconnect, a full queue, repeated requests, burst ids and deadlines, and bad input
(refused, changing nothing).
"""

import math

import pytest

from ptt_protocol.errors import ProtocolError
from ptt_protocol.floor import (
    DenyCause,
    FloorClockError,
    FloorConfig,
    FloorDeny,
    FloorGranted,
    FloorIdle,
    FloorInputError,
    FloorQueuePositionInfo,
    FloorRevoke,
    FloorState,
    FloorTaken,
)
from tests.ptt_protocol.floor_inputs import (
    DISPATCHER,
    EMERGENCY,
    OFFICER,
    TOO_LONG,
    floor,
    talk,
)

# --- release, cancel, disconnect ------------------------------------------------------


def test_release_by_holder_idles_without_queue() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.release("a", 2.0) == [FloorIdle()]
    assert fc.holder is None and fc.next_deadline() is None


def test_release_grants_queue_head_by_priority_then_arrival() -> None:
    fc = floor()
    fc.request("e", EMERGENCY, 0.0)
    fc.request("o1", OFFICER, 1.0)
    fc.request("d1", DISPATCHER, 2.0)
    fc.request("d2", DISPATCHER, 3.0)
    assert fc.release("e", 4.0) == [
        FloorGranted("d1", 2, 60.0, DISPATCHER),
        FloorTaken("d1", DISPATCHER, 2),
        FloorQueuePositionInfo("d2", 1),
        FloorQueuePositionInfo("o1", 2),
    ]
    assert fc.release("d1", 5.0)[:2] == [
        FloorGranted("d2", 3, 60.0, DISPATCHER),
        FloorTaken("d2", DISPATCHER, 3),
    ]
    assert fc.release("d2", 6.0) == [
        FloorGranted("o1", 4, 30.0, OFFICER),
        FloorTaken("o1", OFFICER, 4),
    ]


def test_cancel_removes_queued_request_and_updates_positions() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    for i, user in enumerate(("b", "c", "d")):
        fc.request(user, OFFICER, 1.0 + i)
    assert fc.cancel("c", 3.5) == [FloorQueuePositionInfo("d", 2)]
    assert fc.queue == [("b", OFFICER), ("d", OFFICER)]
    assert fc.cancel("d", 3.6) == []  # last in line: nobody moves
    assert fc.cancel("nobody", 3.7) == []
    assert fc.holder == "a"


def test_release_by_queued_user_is_a_cancel() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.release("b", 3.0) == [FloorQueuePositionInfo("c", 1)]
    assert fc.holder == "a" and fc.queue == [("c", OFFICER)]


def test_release_by_stranger_is_ignored() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.release("z", 1.0) == []
    assert fc.holder == "a"


def test_cancel_by_holder_releases() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.cancel("a", 0.1) == [FloorIdle()]


def test_disconnect_of_holder_is_a_release() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    fc.request("b", OFFICER, 1.0)
    assert fc.disconnect("a", 2.0) == [
        FloorGranted("b", 2, 30.0, OFFICER),
        FloorTaken("b", OFFICER, 2),
    ]


def test_disconnect_of_queued_user_removes_it() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.disconnect("b", 3.0) == [FloorQueuePositionInfo("c", 1)]
    assert fc.queue == [("c", OFFICER)]
    assert fc.disconnect("stranger", 3.5) == []


# --- full queue --------------------------------------------------------------------------


def test_full_queue_denies_equal_or_lower_priority() -> None:
    fc = floor(queue_capacity=2)
    fc.request("a", EMERGENCY, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.request("d", OFFICER, 3.0) == [FloorDeny("d", DenyCause.QUEUE_FULL)]
    assert fc.queue == [("b", OFFICER), ("c", OFFICER)]


def test_full_queue_makes_room_for_higher_priority_by_dropping_the_last() -> None:
    fc = floor(queue_capacity=2)
    fc.request("a", EMERGENCY, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.request("d", DISPATCHER, 3.0) == [
        FloorDeny("c", DenyCause.QUEUE_FULL),
        FloorQueuePositionInfo("d", 1),
        FloorQueuePositionInfo("b", 2),
    ]
    assert fc.queue == [("d", DISPATCHER), ("b", OFFICER)]


# --- repeated requests --------------------------------------------------------------------


def test_holder_request_again_is_idempotent() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 9.0)
    assert fc.request("a", OFFICER, 10.0) == [FloorGranted("a", 1, 20.0, OFFICER)]
    assert fc.request("a", OFFICER, 10.0) == [FloorGranted("a", 1, 20.0, OFFICER)]
    assert fc.burst_id == 1 and fc.holder == "a"


def test_holder_request_again_during_grace_repeats_the_revoke() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 29.0)
    fc.tick(30.0)
    assert fc.request("a", OFFICER, 31.0) == [FloorRevoke("a", TOO_LONG, 2.0)]


def test_holder_raising_to_emergency_lifts_t2_and_tells_the_channel() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.request("a", EMERGENCY, 1.0) == [
        FloorGranted("a", 1, None, EMERGENCY),
        FloorTaken("a", EMERGENCY, 1),
    ]
    assert fc.holder_priority is EMERGENCY
    assert fc.request("d", DISPATCHER, 2.0) == [FloorQueuePositionInfo("d", 1)]
    talk(fc, "a", 2.0, 100.0)
    assert fc.state is FloorState.TAKEN


def test_holder_raising_to_emergency_during_grace_cancels_the_revoke() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 29.0)
    fc.tick(30.0)
    assert fc.request("a", EMERGENCY, 31.0) == [
        FloorGranted("a", 1, None, EMERGENCY),
        FloorTaken("a", EMERGENCY, 1),
    ]
    assert fc.state is FloorState.TAKEN
    fc.media_received("a", 32.0)
    assert fc.tick(33.0) == []  # neither T3 nor T1 (32 + 4)


def test_queued_request_again_keeps_its_place() -> None:
    fc = floor()
    fc.request("a", EMERGENCY, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.request("b", OFFICER, 3.0) == [FloorQueuePositionInfo("b", 1)]
    assert fc.queue == [("b", OFFICER), ("c", OFFICER)]
    # Later arrivals still line up behind it.
    assert fc.request("d", OFFICER, 3.5) == [FloorQueuePositionInfo("d", 3)]
    assert fc.queue == [("b", OFFICER), ("c", OFFICER), ("d", OFFICER)]


def test_queued_request_again_with_higher_priority_moves_up_once() -> None:
    fc = floor()
    fc.request("a", EMERGENCY, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.request("c", DISPATCHER, 3.0) == [
        FloorQueuePositionInfo("c", 1),
        FloorQueuePositionInfo("b", 2),
    ]
    # A lower priority never demotes it.
    assert fc.request("c", OFFICER, 3.5) == [FloorQueuePositionInfo("c", 1)]
    assert fc.queue == [("c", DISPATCHER), ("b", OFFICER)]


# --- burst id and deadlines ----------------------------------------------------------------


def test_burst_id_increments_on_every_new_grant() -> None:
    fc = floor()
    assert fc.burst_id == 0
    fc.request("a", OFFICER, 0.0)
    assert fc.burst_id == 1
    fc.request("a", OFFICER, 0.5)  # re-grant: same burst
    assert fc.burst_id == 1
    fc.release("a", 1.0)
    assert fc.burst_id == 1  # idle keeps the last number
    fc.request("b", OFFICER, 2.0)
    assert fc.burst_id == 2
    fc.request("c", DISPATCHER, 3.0)  # pre-emption is a new burst
    assert fc.burst_id == 3


def test_next_deadline_follows_t1_t2_t3() -> None:
    fc = floor()
    assert fc.next_deadline() is None
    fc.request("a", OFFICER, 10.0)
    assert fc.next_deadline() == 14.0  # T1 from the grant
    talk(fc, "a", 11.0, 38.0)
    assert fc.next_deadline() == 40.0  # T2 (10 + 30) before T1 (38 + 4)
    assert fc.tick(40.0) == [FloorRevoke("a", TOO_LONG, 3.0)]
    assert fc.next_deadline() == 42.0  # T1 (38 + 4) before T3 (40 + 3)
    fc.media_received("a", 39.5 + 1.0)
    assert fc.next_deadline() == 43.0  # now T3
    assert fc.tick(43.0) == [FloorIdle()]
    assert fc.next_deadline() is None


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, 5, -1, True, "EMERGENCY", 2.0, None])
def test_unknown_priority_is_rejected_and_changes_nothing(bad: object) -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    with pytest.raises(FloorInputError, match="unknown floor priority"):
        fc.request("b", bad, 10.0)  # type: ignore[arg-type]
    # The clock did not move either: T1 of "a" (due at 4) has not fired.
    assert fc.holder == "a" and fc.queue == []


def test_int_priority_is_accepted() -> None:
    fc = floor()
    fc.request("a", 4, 0.0)
    assert fc.holder_priority is EMERGENCY


@pytest.mark.parametrize("bad", ["", None, 42, b"a"])
def test_bad_user_id_is_rejected(bad: object) -> None:
    fc = floor()
    with pytest.raises(FloorInputError, match="user id"):
        fc.request(bad, OFFICER, 0.0)  # type: ignore[arg-type]
    with pytest.raises(FloorInputError):
        fc.media_received(bad, 0.0)  # type: ignore[arg-type]
    assert isinstance(FloorInputError("x"), ProtocolError)
    assert fc.holder is None


def test_clock_running_backwards_is_rejected_and_changes_nothing() -> None:
    fc = floor()
    fc.request("a", OFFICER, 10.0)
    with pytest.raises(FloorClockError, match="backwards"):
        fc.release("a", 9.0)
    assert fc.holder == "a"
    for bad in (math.nan, math.inf, "soon"):
        with pytest.raises(FloorClockError):
            fc.tick(bad)  # type: ignore[arg-type]
    assert fc.holder == "a"
    assert fc.tick(10.0) == []  # the same instant again is fine


@pytest.mark.parametrize(
    "kwargs",
    [
        {"queue_capacity": -1},
        {"queue_capacity": 1.5},
        {"t1_end_of_media": 0},
        {"t1_end_of_media": math.inf},
        {"t2_officer": 0.0},
        {"t2_emergency": -5.0},
        {"t3_grace": -1.0},
    ],
)
def test_bad_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FloorConfig(**kwargs)  # type: ignore[arg-type]
