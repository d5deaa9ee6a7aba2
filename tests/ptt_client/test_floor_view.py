"""One channel's floor as a radio shows it (ptt_client.floor_view): the view follows the TS 24.380
participant and the other talker, in place, so a display holding the view sees every change."""

from __future__ import annotations

from ptt_client.floor_view import ChannelFloor, FloorView
from ptt_protocol import control
from tests.ptt_client.test_session_core import CH, taken


def state(floor: ChannelFloor) -> tuple[str, str | None, int, int, str]:
    v = floor.view
    return (v.state, v.talker, v.burst_id, v.queue_position, v.cause)


def test_the_view_follows_a_request_through_the_queue_to_the_end_of_the_burst() -> None:
    floor = ChannelFloor("alice")
    view = floor.view
    floor.receive(taken("bob", 4))
    assert state(floor) == ("taken", "bob", 4, 0, "")
    floor.press(1)
    assert state(floor) == ("requested", "bob", 4, 0, "")
    floor.receive(control.FloorQueuePosition(channel_id=CH, position=2))
    assert state(floor) == ("queued", "bob", 4, 2, "")
    floor.receive(control.FloorIdle(channel_id=CH))  # bob is done; we are still in line
    assert state(floor) == ("queued", None, 0, 2, "")
    floor.receive(control.FloorGranted(channel_id=CH, burst_id=5, duration_limit=30.0))
    assert state(floor) == ("granted", "alice", 5, 0, "")
    assert floor.talking_burst == 5 and view.priority == 1
    floor.release()
    assert state(floor) == ("idle", None, 0, 0, "") and floor.talking_burst is None
    assert floor.view is view  # updated in place


def test_a_deny_or_revoke_shows_until_the_floor_moves_on() -> None:
    floor = ChannelFloor("alice")
    floor.receive(taken("bob", 4))
    floor.press(1)
    floor.receive(control.FloorDeny(channel_id=CH, cause="Another MCPTT client has permission"))
    assert state(floor) == ("denied", "bob", 4, 0, "Another MCPTT client has permission")
    floor.receive(control.FloorIdle(channel_id=CH))
    assert floor.view.state == "idle"
    floor.release()
    floor.press(2)
    floor.receive(control.FloorGranted(channel_id=CH, burst_id=6, duration_limit=0.0))
    floor.receive(control.FloorRevoke(channel_id=CH, cause="Media Burst pre-empted"))
    assert state(floor)[:2] == ("revoked", None)
    floor.receive(taken("carol", 7, priority=4))
    assert state(floor) == ("taken", "carol", 7, 0, "Media Burst pre-empted")
    assert floor.view.priority == 4 and floor.ptt_down


def test_our_own_name_in_floor_taken_is_not_another_talker() -> None:
    floor = ChannelFloor("alice")
    floor.press(1)
    floor.receive(control.FloorGranted(channel_id=CH, burst_id=6, duration_limit=0.0))
    assert floor.receive(taken("alice", 6)) == []
    assert state(floor) == ("granted", "alice", 6, 0, "")


def test_a_view_given_in_is_the_one_kept_up_to_date() -> None:
    shown = FloorView()
    floor = ChannelFloor("alice", shown)
    floor.receive(taken("bob", 9))
    assert (shown.state, shown.talker_name) == ("taken", "Bob")
