"""The whole model: unknown events, and any event sequence keeps it consistent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client import events
from ptt_protocol import control
from tests.tui.state.samples import A1, A2, T0, channel_state
from tui.state import Changed, ConsoleState, FloorReleased


def test_unknown_events_change_nothing() -> None:
    state = channel_state()
    assert state.apply(object(), T0) == Changed.NONE
    assert state.apply(control.Pong(nonce=1), T0) == Changed.NONE


EVENTS = st.one_of(
    st.builds(
        control.FloorTaken,
        channel_id=st.integers(0, 3),
        user_id=st.sampled_from(["alice", "bob", "disp"]),
        priority=st.integers(1, 4),
        burst_id=st.integers(0, 5),
        since=st.floats(0, 2e9),
    ),
    st.builds(control.FloorIdle, channel_id=st.integers(0, 3)),
    st.builds(
        control.FloorGranted,
        channel_id=st.integers(0, 3),
        burst_id=st.integers(0, 5),
        duration_limit=st.just(30.0),
    ),
    st.builds(FloorReleased, st.integers(0, 3)),
    st.builds(control.FloorDeny, channel_id=st.integers(0, 3), cause=st.just("busy")),
    st.builds(control.FloorRevoke, channel_id=st.integers(0, 3), cause=st.just("pre-empted")),
    st.builds(control.FloorQueuePosition, channel_id=st.integers(0, 3), position=st.integers(0, 9)),
    st.builds(
        control.EmergencyAlert,
        alert_id=st.sampled_from([A1, A2]),
        user_id=st.sampled_from(["alice", "bob"]),
        channel_id=st.integers(0, 3),
        raised_at=st.floats(0, 2e9),
    ),
    st.builds(control.EmergencyAck, alert_id=st.sampled_from([A1, A2]), by_user=st.just("disp")),
    st.builds(control.EmergencyCancel, alert_id=st.sampled_from([A1, A2]), by_user=st.just("disp")),
    st.builds(
        control.PresenceUpdate,
        user_id=st.sampled_from(["alice", "bob"]),
        online=st.booleans(),
        status=st.sampled_from(control.STATUSES),
        channel_id=st.one_of(st.none(), st.integers(0, 3)),
        last_seen=st.floats(0, 2e9),
    ),
    st.builds(
        events.TalkerVerified, st.integers(0, 3), st.just("alice"), st.text(), st.integers(0, 5)
    ),
    st.builds(events.Disconnected, st.text(max_size=5)),
    st.builds(
        control.ChannelList,
        channels=st.lists(
            st.builds(control.ChannelInfo, channel_id=st.integers(0, 3), name=st.text(max_size=5)),
            max_size=4,
        ).map(tuple),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 2e9)), max_size=40))
def test_any_event_sequence_keeps_the_model_consistent(items: list[tuple[object, float]]) -> None:
    state = ConsoleState("disp")
    state.apply_all(items)
    active = state.active_emergencies()
    assert all(e.active for e in active)
    if active:
        assert state.selected_emergency() in active
    for row in state.channels.values():
        assert row.my_floor in {"idle", "granted", "queued", "denied", "revoked"}
        if row.talker is None:
            assert row.talk_started is None or row.my_floor == "granted"
        assert state.talk_seconds(row, 2e9) >= 0
    for row in state.channel_list():
        state.members_online(row.channel_id)
    state.presence_rows("a")
    state.to_csv()
