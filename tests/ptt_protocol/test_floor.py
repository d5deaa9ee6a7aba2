"""Floor control of one channel (ptt_protocol.floor), one test per rule, explicit times: the
standard's names, grant, deny, queue and pre-emption, and the T1, T2 and T3 timers.

Release, cancel, a full queue, repeated requests, burst ids and bad input are in
``test_floor_queue.py``.
"""

from ptt_protocol.floor import (
    DenyCause,
    FloorConfig,
    FloorDeny,
    FloorGranted,
    FloorIdle,
    FloorQueuePositionInfo,
    FloorRevoke,
    FloorState,
    FloorTaken,
    RevokeCause,
)
from tests.ptt_protocol.floor_inputs import (
    ANOTHER_HAS_PERMISSION,
    DISPATCHER,
    EMERGENCY,
    OFFICER,
    PERIL,
    PRE_EMPTED,
    TOO_LONG,
    floor,
    talk,
)

# --- the standard's names --------------------------------------------------


def test_causes_carry_ts_24_380_numbers_and_phrases() -> None:
    # TS 24.380 8.2.6.2 (Floor Deny) and 8.2.10.2 (Floor Revoke).
    assert int(ANOTHER_HAS_PERMISSION) == 1
    assert ANOTHER_HAS_PERMISSION.phrase == "Another MCPTT client has permission"
    assert int(DenyCause.QUEUE_FULL) == 7
    assert DenyCause.QUEUE_FULL.phrase == "Queue full"
    assert int(RevokeCause.ONLY_ONE_MCPTT_CLIENT) == 1
    assert RevokeCause.ONLY_ONE_MCPTT_CLIENT.phrase == "Only one MCPTT client"
    assert int(TOO_LONG) == 2
    assert TOO_LONG.phrase == "Media burst too long"
    assert int(RevokeCause.NO_PERMISSION_TO_SEND_A_MEDIA_BURST) == 3
    assert (
        RevokeCause.NO_PERMISSION_TO_SEND_A_MEDIA_BURST.phrase
        == "No permission to send a Media Burst"
    )
    assert int(PRE_EMPTED) == 4
    assert PRE_EMPTED.phrase == "Media Burst pre-empted"
    assert all(c.phrase for c in DenyCause) and all(c.phrase for c in RevokeCause)


def test_events_log_like_the_standard() -> None:
    assert (
        str(FloorDeny("bob", ANOTHER_HAS_PERMISSION))
        == "Floor Deny to=bob cause=#1 'Another MCPTT client has permission'"
    )
    assert str(FloorRevoke("amy", TOO_LONG, 3.0)) == (
        "Floor Revoke to=amy cause=#2 'Media burst too long' grace=3s"
    )
    assert str(FloorGranted("amy", 7, None, EMERGENCY)) == (
        "Floor Granted to=amy burst=7 duration=none priority=EMERGENCY"
    )
    assert str(FloorIdle()) == "Floor Idle"


def test_events_say_who_receives_them() -> None:
    assert FloorGranted("a", 1, 30.0, OFFICER).to == "a"
    assert FloorDeny("a", ANOTHER_HAS_PERMISSION).to == "a"
    assert FloorRevoke("a", TOO_LONG, 3.0).to == "a"
    assert FloorQueuePositionInfo("a", 1).to == "a"
    taken = FloorTaken("a", OFFICER, 1)
    assert taken.to is None and taken.exclude == "a"  # everyone but the talker
    assert FloorIdle().to is None and FloorIdle().exclude is None


# --- grant, deny, queue, pre-emption ----------------------------------------


def test_grant_when_idle() -> None:
    fc = floor()
    assert fc.state.value == "G: Floor Idle" and fc.holder is None
    assert fc.request("a", OFFICER, 0.0) == [
        FloorGranted("a", 1, 30.0, OFFICER),
        FloorTaken("a", OFFICER, 1),
    ]
    assert fc.holder == "a" and fc.holder_priority is OFFICER
    assert fc.state is FloorState.TAKEN
    assert fc.may_send("a") and not fc.may_send("b")


def test_deny_when_busy_and_queueing_off() -> None:
    fc = floor(queue_capacity=0)
    fc.request("a", OFFICER, 0.0)
    assert fc.request("b", OFFICER, 1.0) == [FloorDeny("b", ANOTHER_HAS_PERMISSION)]
    assert fc.holder == "a" and fc.queue == []


def test_busy_floor_queues_with_positions() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.request("b", OFFICER, 1.0) == [FloorQueuePositionInfo("b", 1)]
    assert fc.request("c", OFFICER, 2.0) == [FloorQueuePositionInfo("c", 2)]
    assert fc.queue == [("b", OFFICER), ("c", OFFICER)]
    assert not fc.may_send("b")


def test_strictly_higher_priority_pre_empts_and_old_holder_is_not_requeued() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.request("d", DISPATCHER, 3.0) == [
        FloorRevoke("a", PRE_EMPTED, 0.0),
        FloorGranted("d", 2, 60.0, DISPATCHER),
        FloorTaken("d", DISPATCHER, 2),
    ]
    assert fc.holder == "d" and fc.holder_priority is DISPATCHER
    assert fc.queue == []
    assert not fc.may_send("a")


def test_equal_priority_does_not_pre_empt() -> None:
    fc = floor()
    fc.request("d1", DISPATCHER, 0.0)
    assert fc.request("d2", DISPATCHER, 1.0) == [FloorQueuePositionInfo("d2", 1)]
    assert fc.holder == "d1"


def test_lower_priority_does_not_pre_empt() -> None:
    fc = floor()
    fc.request("e", EMERGENCY, 0.0)
    assert fc.request("p", PERIL, 1.0) == [FloorQueuePositionInfo("p", 1)]
    assert fc.holder == "e"


def test_queue_orders_by_priority_then_arrival() -> None:
    fc = floor()
    fc.request("boss", EMERGENCY, 0.0)
    assert fc.request("o1", OFFICER, 0.1) == [FloorQueuePositionInfo("o1", 1)]
    # A dispatcher goes ahead of the officer, who moves back and is told so.
    assert fc.request("d1", DISPATCHER, 0.2) == [
        FloorQueuePositionInfo("d1", 1),
        FloorQueuePositionInfo("o1", 2),
    ]
    assert fc.request("o2", OFFICER, 0.3) == [FloorQueuePositionInfo("o2", 3)]
    assert fc.request("p1", PERIL, 0.4) == [
        FloorQueuePositionInfo("p1", 1),
        FloorQueuePositionInfo("d1", 2),
        FloorQueuePositionInfo("o1", 3),
        FloorQueuePositionInfo("o2", 4),
    ]
    assert fc.queue == [("p1", PERIL), ("d1", DISPATCHER), ("o1", OFFICER), ("o2", OFFICER)]


def test_queued_user_raising_priority_above_holder_pre_empts() -> None:
    fc = floor()
    fc.request("a", DISPATCHER, 0.0)
    fc.request("b", OFFICER, 1.0)
    fc.request("c", OFFICER, 2.0)
    assert fc.request("b", EMERGENCY, 3.0) == [
        FloorRevoke("a", PRE_EMPTED, 0.0),
        FloorGranted("b", 2, None, EMERGENCY),
        FloorTaken("b", EMERGENCY, 2),
        FloorQueuePositionInfo("c", 1),
    ]
    assert fc.queue == [("c", OFFICER)]


def test_pre_emption_during_grace_grants_at_once() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 29.0)
    assert fc.tick(30.0) == [FloorRevoke("a", TOO_LONG, 3.0)]
    assert fc.request("e", EMERGENCY, 31.0) == [
        FloorRevoke("a", PRE_EMPTED, 0.0),
        FloorGranted("e", 2, None, EMERGENCY),
        FloorTaken("e", EMERGENCY, 2),
    ]
    assert fc.state is FloorState.TAKEN and fc.holder == "e"


# --- T2 stop talking and T3 grace -----------------------------------------------


def test_t2_revokes_then_t3_grace_keeps_floor_reserved() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 9.0)
    fc.request("b", OFFICER, 9.5)
    talk(fc, "a", 10.0, 29.0)
    assert fc.tick(29.99) == []
    assert fc.tick(30.0) == [FloorRevoke("a", TOO_LONG, 3.0)]
    assert fc.state is FloorState.PENDING_REVOKE
    # Reserved: the holder still talks, a newcomer of equal rank waits.
    assert fc.holder == "a" and fc.may_send("a")
    assert fc.media_received("a", 31.0) == []
    assert fc.request("c", OFFICER, 31.5) == [FloorQueuePositionInfo("c", 2)]
    assert fc.next_deadline() == 33.0
    assert fc.tick(32.99) == []
    assert fc.tick(33.0) == [
        FloorGranted("b", 2, 30.0, OFFICER),
        FloorTaken("b", OFFICER, 2),
        FloorQueuePositionInfo("c", 1),
    ]
    assert not fc.may_send("a")


def test_t3_expiry_with_empty_queue_idles() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 29.0)
    assert fc.tick(30.0) == [FloorRevoke("a", TOO_LONG, 3.0)]
    fc.media_received("a", 32.0)
    assert fc.tick(33.0) == [FloorIdle()]
    assert fc.holder is None


def test_release_during_grace_frees_the_floor() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 29.0)
    fc.tick(30.0)
    assert fc.release("a", 31.0) == [FloorIdle()]
    assert fc.next_deadline() is None


def test_emergency_has_no_t2() -> None:
    fc = floor()
    assert fc.request("e", EMERGENCY, 0.0) == [
        FloorGranted("e", 1, None, EMERGENCY),
        FloorTaken("e", EMERGENCY, 1),
    ]
    talk(fc, "e", 1.0, 600.0, every=2.0)
    assert fc.holder == "e" and fc.state is FloorState.TAKEN
    assert fc.next_deadline() == 599.0 + 4.0  # only T1 runs


def test_dispatcher_t2_is_60_s() -> None:
    fc = floor()
    assert fc.request("d", DISPATCHER, 100.0)[0] == FloorGranted("d", 1, 60.0, DISPATCHER)
    talk(fc, "d", 101.0, 159.0)
    assert fc.tick(159.99) == []
    assert fc.tick(160.0) == [FloorRevoke("d", TOO_LONG, 3.0)]


def test_imminent_peril_t2_is_60_s_and_officer_30_s() -> None:
    cfg = FloorConfig()
    assert cfg.t2_stop_talking(PERIL) == 60.0
    assert cfg.t2_stop_talking(OFFICER) == 30.0
    assert cfg.t2_stop_talking(EMERGENCY) is None


def test_t2_limits_are_configurable_per_priority() -> None:
    fc = floor(t2_officer=5.0, t3_grace=0.0)
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 4.0)
    # T3 of 0: the revoke and the end of the burst come together.
    assert fc.tick(5.0) == [FloorRevoke("a", TOO_LONG, 0.0), FloorIdle()]


# --- T1 end of media -----------------------------------------------------------------


def test_t1_without_media_frees_the_floor() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.tick(3.99) == []
    assert fc.tick(4.0) == [FloorIdle()]
    assert fc.holder is None and fc.state is FloorState.IDLE


def test_t1_expiry_grants_the_queue_head() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    fc.request("b", OFFICER, 1.0)
    assert fc.tick(4.0) == [FloorGranted("b", 2, 30.0, OFFICER), FloorTaken("b", OFFICER, 2)]
    assert fc.next_deadline() == 8.0  # the new grant starts T1


def test_holder_media_resets_t1() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.media_received("a", 3.0) == []
    assert fc.next_deadline() == 7.0
    assert fc.tick(6.99) == []
    assert fc.tick(7.0) == [FloorIdle()]


def test_media_from_non_holder_is_not_allowed_and_does_not_reset_t1() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    assert fc.media_received("intruder", 3.0) == []
    assert not fc.may_send("intruder")
    assert fc.next_deadline() == 4.0
    assert fc.tick(4.0) == [FloorIdle()]


def test_inputs_fire_overdue_timers_first() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    # Nobody called tick(); "a" has been silent past T1 when "b" asks.
    assert fc.request("b", OFFICER, 5.0) == [
        FloorIdle(),
        FloorGranted("b", 2, 30.0, OFFICER),
        FloorTaken("b", OFFICER, 2),
    ]
    # Media arriving after the floor was lost is not allowed.
    fc2 = floor()
    fc2.request("a", OFFICER, 0.0)
    assert fc2.media_received("a", 4.5) == [FloorIdle()]
    assert not fc2.may_send("a")


def test_late_tick_fires_timers_in_deadline_order() -> None:
    fc = floor()
    fc.request("a", OFFICER, 0.0)
    talk(fc, "a", 1.0, 28.0)
    # T2 was due at 30, T1 at 32: the revoke goes first, then the floor is free.
    assert fc.tick(35.0) == [FloorRevoke("a", TOO_LONG, 3.0), FloorIdle()]
