"""The relay's channel core (ptt_server.channel_core): floor events in, effects out, no I/O.

Time is an input, so T1 and T2 run out in microseconds; the burst log's outcome and the
trailing grace are checked for every way a burst ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from ptt_protocol import control, floor
from ptt_server.channel_core import (
    TRAILING_GRACE,
    Broadcast,
    BurstEnded,
    BurstStarted,
    ChannelCore,
    Counted,
    Granted,
    ToUser,
)

CONFIG = floor.FloorConfig(
    queue_capacity=4, t1_end_of_media=4.0, t2_officer=30.0, t2_dispatcher=60.0, t3_grace=3.0
)
WALL = 1_900_000_000.0
P1, P4 = floor.Priority.OFFICER, floor.Priority.EMERGENCY


def core() -> ChannelCore:
    channel = ChannelCore(7, CONFIG)
    channel.names.update(alice="Alice Adams", bob="Bob Brown")
    return channel


def ended(effects: Sequence[object]) -> list[BurstEnded]:
    return [e for e in effects if isinstance(e, BurstEnded)]


def test_a_grant_starts_a_burst_and_tells_the_talker_and_listeners() -> None:
    c = core()
    effects = c.request("alice", P1, 10.0, WALL)
    started = [e for e in effects if isinstance(e, BurstStarted)]
    assert started == [BurstStarted("alice", 1, started[0].burst_id, WALL)]
    assert c.burst_id == started[0].burst_id
    assert Granted(0.0) in effects
    assert any(
        isinstance(e, ToUser) and isinstance(e.message, control.FloorGranted) for e in effects
    )
    taken = [e for e in effects if isinstance(e, Broadcast)]
    assert taken and isinstance(taken[0].message, control.FloorTaken)
    assert taken[0].message.display_name == "Alice Adams" and taken[0].exclude == "alice"


def test_a_released_burst_ends_released_and_its_tail_is_forwarded_briefly() -> None:
    c = core()
    burst = c.request("alice", P1, 10.0, WALL)[0]
    assert not isinstance(burst, BurstEnded)
    burst_id = c.burst_id
    assert burst_id is not None
    effects = c.release("alice", 12.0, WALL + 2)
    assert ended(effects) == [BurstEnded(burst_id, "released", 2.0)]
    assert Broadcast(control.FloorIdle(channel_id=7)) in effects
    assert c.accepts_trailing("alice", burst_id, False, 12.0 + TRAILING_GRACE / 2)
    assert not c.accepts_trailing("alice", burst_id, False, 12.0 + TRAILING_GRACE)
    assert not c.accepts_trailing("alice", burst_id + 1, False, 12.1)
    assert not c.accepts_trailing("bob", burst_id, False, 12.1)


def test_t1_handing_the_floor_to_a_queued_user_logs_expired_and_gives_no_voice_grace() -> None:
    """Issue 10: the silent talker's burst was logged "released" and its voice forwarded for
    0.3 s more when T1 handed the floor straight to the queue."""
    c = core()
    c.request("alice", P1, 10.0, WALL)
    silent = c.burst_id
    assert silent is not None
    c.request("bob", P1, 10.5, WALL)  # queued behind alice
    effects = c.tick(14.0, WALL + 4)  # T1: alice sent nothing for 4 s
    assert ended(effects) == [BurstEnded(silent, "expired", 4.0)]
    assert c.burst_id is not None and c.burst_id != silent  # bob's burst
    assert not c.accepts_trailing("alice", silent, False, 14.1)
    assert c.accepts_trailing("alice", silent, True, 14.1)  # its signed tail may still come


def test_a_disconnect_handing_the_floor_on_logs_disconnected() -> None:
    c = core()
    c.request("alice", P1, 10.0, WALL)
    gone = c.burst_id
    c.request("bob", P1, 10.5, WALL)
    effects = c.disconnect("alice", 11.0, WALL + 1)
    assert [e.outcome for e in ended(effects)] == ["disconnected"]
    assert gone is not None and not c.accepts_trailing("alice", gone, False, 11.1)
    assert "alice" not in c.names


def test_a_disconnect_with_nobody_queued_logs_disconnected_too() -> None:
    c = core()
    c.request("alice", P1, 10.0, WALL)
    effects = c.disconnect("alice", 11.0, WALL + 1)
    assert [e.outcome for e in ended(effects)] == ["disconnected"]


def test_a_pre_emption_logs_pre_empted_and_counts_it() -> None:
    c = core()
    c.request("alice", P1, 10.0, WALL)
    first = c.burst_id
    effects = c.request("bob", P4, 11.0, WALL + 1)
    assert [e.outcome for e in ended(effects)] == ["pre-empted"]
    assert Counted("pre-emption") in effects
    revoke = [e for e in effects if isinstance(e, ToUser) and e.user == "alice"]
    assert revoke and isinstance(revoke[0].message, control.FloorRevoke)
    assert first is not None and not c.accepts_trailing("alice", first, False, 11.1)


def test_a_repeated_grant_stays_in_the_same_burst() -> None:
    c = core()
    c.request("alice", P1, 10.0, WALL)
    burst = c.burst_id
    effects = c.request("alice", P1, 10.2, WALL)
    assert ended(effects) == [] and c.burst_id == burst
    assert [type(e) for e in effects] == [ToUser]


def test_a_late_entrant_learns_the_talker_and_nobody_after_idle() -> None:
    c = core()
    assert c.taken_message() is None
    c.request("alice", P1, 10.0, WALL)
    taken = c.taken_message()
    assert taken is not None and taken.user_id == "alice" and taken.burst_id == c.burst_id
    c.release("alice", 11.0, WALL)
    assert c.taken_message() is None


def test_media_restarts_t1_and_a_timer_due_by_the_packet_fires_first() -> None:
    c = core()
    c.request("alice", P1, 10.0, WALL)
    assert c.media("alice", 13.0, lambda: WALL) == []  # T1 restarts at 13
    assert c.tick(16.9, WALL) == []
    effects = c.media("alice", 21.5, lambda: WALL)  # T1 ran out at 17, before this packet
    assert [e.outcome for e in ended(effects)] == ["expired"]


def test_server_shutdown_ends_the_burst() -> None:
    c = core()
    assert c.end(5.0) == []
    c.request("alice", P1, 10.0, WALL)
    assert [e.outcome for e in ended(c.end(12.0))] == ["server shutdown"]


def test_a_broadcast_is_marked_in_floor_taken_the_burst_log_and_for_late_entrants() -> None:
    c = core()
    c.request("alice", P1, 10.0, WALL)
    effects = c.request("disp", floor.Priority.DISPATCHER, 11.0, WALL + 1, broadcast=True)
    assert ended(effects)[0].outcome == "pre-empted"
    started = [e for e in effects if isinstance(e, BurstStarted)]
    assert [(s.talker, s.broadcast) for s in started] == [("disp", True)]
    taken = [e.message for e in effects if isinstance(e, Broadcast)]
    assert isinstance(taken[0], control.FloorTaken) and taken[0].broadcast
    late = c.taken_message()
    assert late is not None and late.broadcast and late.user_id == "disp"
    denied = c.request("bob", P1, 12.0, WALL + 2)
    assert ToUser("bob", control.FloorDeny(channel_id=7, cause="Broadcast in progress")) in denied
    assert Counted("denial", "Broadcast in progress") in denied


def test_access_time_runs_from_the_first_request_to_the_grant() -> None:
    """TS 22.179's access time is from the first press: a queued user who asks again (its
    request or its queue position was lost) still waited from the first one."""
    c = core()
    c.request("alice", P1, 10.0, WALL)
    c.request("bob", P1, 11.0, WALL)  # queued behind alice
    c.request("bob", P1, 12.5, WALL)  # asks again while queued
    effects = c.release("alice", 14.0, WALL)
    assert [e for e in effects if isinstance(e, Granted)] == [Granted(3.0)]


def test_a_holder_asking_again_at_a_higher_priority_is_named_at_it() -> None:
    """An officer who raises an emergency while talking keeps its burst, and a late
    entrant (and the burst log) hears the burst at the emergency priority."""
    c = core()
    c.request("alice", P1, 10.0, WALL)
    burst = c.burst_id
    c.request("alice", P4, 10.5, WALL)
    taken = c.taken_message()
    assert taken is not None and taken.burst_id == burst and taken.priority == int(P4)
