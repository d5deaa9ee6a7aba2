"""The presence part: order, search, logged changes and locations."""

from __future__ import annotations

from ptt_protocol import control
from tests.tui.state.samples import A1, T0, alert, channel_state, presence
from tui.state import Changed, LocationText, NamesVerified


def test_presence_order_emergencies_first_then_online_then_name() -> None:
    state = channel_state()
    state.apply(presence("carol", "Carol Clark", online=False, status="offline"), T0)
    state.apply(presence("bob", "Bob Brown"), T0)
    state.apply(presence("alice", "alice adams"), T0)
    state.apply(presence("dave", "Dave Dunn", online=False, status="offline"), T0)
    state.apply(presence("zoe", "Zoe Zimmer", status="en_route"), T0)
    assert [r.user_id for r in state.presence_rows()] == ["alice", "bob", "zoe", "carol", "dave"]
    state.apply(alert(user="dave"), T0)
    assert state.presence_rows()[0].user_id == "dave"
    assert state.presence["dave"].status == "emergency"


def test_presence_search_matches_id_name_status_and_channel() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams", channel_id=2), T0)
    state.apply(presence("bob", "Bob Brown", status="on_scene"), T0)
    assert [r.user_id for r in state.presence_rows("ADAMS")] == ["alice"]
    assert [r.user_id for r in state.presence_rows("on_sc")] == ["bob"]
    assert [r.user_id for r in state.presence_rows("On Scene")] == ["bob"]
    assert [r.user_id for r in state.presence_rows("traffic")] == ["alice"]
    assert [r.user_id for r in state.presence_rows("  ")] == ["alice", "bob"]
    assert state.presence_rows("nobody") == []


def test_presence_changes_are_logged_only_when_they_change() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    count = len(state.log)
    state.apply(presence("alice", "Alice Adams"), T0 + 1)
    assert len(state.log) == count
    state.apply(presence("alice", "Alice Adams", status="on_scene"), T0 + 2)
    assert state.log[-1].text == "Alice Adams: on_scene"
    state.apply(presence("alice", "Alice Adams", online=False, status="offline"), T0 + 3)
    assert state.log[-1].text == "Alice Adams: offline"


def test_location_text_goes_to_presence_and_alert() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    state.apply(alert(), T0)
    changed = state.apply(LocationText("alice", "52.37022, 4.89517", alert_id=A1), T0)
    assert changed & Changed.PRESENCE and changed & Changed.EMERGENCIES
    assert state.presence["alice"].location == "52.37022, 4.89517"
    assert state.emergencies[A1].location == "52.37022, 4.89517"


def test_enrolled_users_who_never_logged_in_are_listed_and_named_from_credentials() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    enrolled = control.EnrolledUsers(
        users=(
            control.EnrolledUser(user_id="alice", last_heard=T0 - 30),
            control.EnrolledUser(user_id="carol"),
            control.EnrolledUser(user_id="disp"),
        )
    )
    assert Changed.PRESENCE in state.apply(enrolled, T0)
    assert set(state.presence) == {"alice", "carol"}  # the console itself is not listed
    carol = state.presence["carol"]
    assert (carol.online, carol.status, carol.last_seen) == (False, "offline", 0.0)
    assert state.heard == {"alice": T0 - 30}
    assert state.user_choices() == [("alice", "Alice Adams"), ("carol", "carol")]
    # Names from verified credentials win over what the server says afterwards.
    state.apply(NamesVerified((("carol", "Carol Clark"),)), T0)
    state.apply(presence("carol", "Not Carol"), T0 + 1)
    assert state.name_of("carol") == "Carol Clark"
    assert state.presence["carol"].display_name == "Carol Clark"
    # Her first login is her first presence: not logged as a change.
    assert not any("Carol" in e.text for e in state.log)


def test_heard_is_when_the_user_last_talked_not_their_last_presence_change() -> None:
    state = channel_state()
    state.apply(presence("bob", "Bob Brown"), T0)
    taken = control.FloorTaken(channel_id=1, user_id="bob", priority=1, burst_id=7, since=T0 + 5)
    assert Changed.PRESENCE in state.apply(taken, T0 + 5)
    assert state.on_air("bob") and state.heard["bob"] == T0 + 5
    assert Changed.PRESENCE in state.apply(control.FloorIdle(channel_id=1), T0 + 9)
    assert not state.on_air("bob") and state.heard["bob"] == T0 + 9  # the end of the burst
    state.apply(presence("bob", "Bob Brown", status="busy"), T0 + 60)
    assert state.heard["bob"] == T0 + 9
    # The server's burst log only moves it forward.
    state.apply(
        control.EnrolledUsers(users=(control.EnrolledUser(user_id="bob", last_heard=T0),)), T0
    )
    assert state.heard["bob"] == T0 + 9
