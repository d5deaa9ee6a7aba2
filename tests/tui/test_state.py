"""The console's pure model: every event kind, ordering, bounds, and the CSV export."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client import events
from ptt_protocol import control
from tui.state import (
    Changed,
    ConsoleState,
    Conversation,
    FloorReleased,
    LocationText,
    MembersKnown,
    Note,
    TextSent,
)

T0 = 1_800_000_000.0
A1 = b"\x01" * 16
A2 = b"\x02" * 16


def channel_state() -> ConsoleState:
    state = ConsoleState("disp", "Dispatch One")
    state.apply(
        control.ChannelList(
            channels=(
                control.ChannelInfo(channel_id=1, name="patrol"),
                control.ChannelInfo(channel_id=2, name="Traffic"),
            )
        ),
        T0,
    )
    state.apply(MembersKnown(1, ("disp", "alice", "bob"), 1), T0)
    return state


def presence(user: str, name: str, *, online: bool = True, status: str = "available", **kw: object):
    return control.PresenceUpdate(
        user_id=user,
        display_name=name,
        online=online,
        status=status,  # type: ignore[arg-type]
        last_seen=T0,
        **kw,  # type: ignore[arg-type]
    )


def alert(alert_id: bytes = A1, user: str = "alice", channel: int = 1, at: float = T0):
    return control.EmergencyAlert(alert_id=alert_id, user_id=user, channel_id=channel, raised_at=at)


def test_channel_list_adds_renames_and_drops_channels() -> None:
    state = channel_state()
    assert [r.name for r in state.channel_list()] == ["patrol", "Traffic"]
    state.apply(
        control.ChannelList(channels=(control.ChannelInfo(channel_id=2, name="traffic-2"),)), T0
    )
    assert list(state.channels) == [2]
    assert state.channels[2].name == "traffic-2"
    assert "no longer a member of 1 channel(s)" in state.log[-1].text


def test_affiliated_sets_members_and_monitoring() -> None:
    state = channel_state()
    changed = state.apply(
        control.Affiliated(
            channel_id=1,
            name="patrol",
            members=(control.Member(user_id="alice"), control.Member(user_id="carol")),
            epoch=3,
        ),
        T0,
    )
    row = state.channels[1]
    assert row.affiliated and row.members == ("alice", "carol") and row.epoch == 3
    assert Changed.CHANNELS in changed
    state.apply(control.Deaffiliated(channel_id=1, reason="removed from the channel roster"), T0)
    assert not state.channels[1].affiliated
    assert state.log[-1].text == "left patrol: removed from the channel roster"


def test_floor_taken_verified_and_idle() -> None:
    state = channel_state()
    state.apply(
        control.FloorTaken(
            channel_id=1,
            user_id="alice",
            display_name="Alice Adams",
            priority=1,
            burst_id=7,
            since=T0 - 2,
        ),
        T0,
    )
    row = state.channels[1]
    assert (row.talker, row.talker_name, row.verified) == ("alice", "Alice Adams", False)
    assert state.talk_seconds(row, T0 + 3.9) == 5
    # A signature for another burst does not verify this one.
    assert state.apply(events.TalkerVerified(1, "alice", "Alice Adams", 6), T0) == Changed.NONE
    assert not row.verified
    assert Changed.CHANNELS in state.apply(events.TalkerVerified(1, "alice", "Alice Adams", 7), T0)
    assert row.verified
    state.apply(control.FloorIdle(channel_id=1), T0 + 4)
    assert row.talker is None and not row.verified and row.talk_started is None
    assert state.log[-1].text == "patrol idle (Alice Adams talked 6s)"
    assert row.last_activity == T0 + 4


def test_floor_taken_with_future_since_uses_arrival_time() -> None:
    state = channel_state()
    state.apply(
        control.FloorTaken(channel_id=1, user_id="bob", priority=1, burst_id=1, since=T0 + 100),
        T0,
    )
    assert state.channels[1].talk_started == T0
    assert state.channels[1].talker_name == "bob"


def test_own_floor_states_for_the_status_line() -> None:
    state = channel_state()
    assert state.my_floor() == ("", "idle")
    state.apply(control.FloorQueuePosition(channel_id=1, position=2), T0)
    assert state.my_floor() == ("patrol", "queued #2")
    state.apply(control.FloorGranted(channel_id=1, burst_id=9, duration_limit=30.0), T0 + 1)
    assert state.my_floor() == ("patrol", "granted")
    row = state.channels[1]
    assert row.talker == "disp" and row.talker_name == "Dispatch One"
    state.apply(control.FloorRevoke(channel_id=1, cause="media burst too long"), T0 + 31)
    assert state.my_floor() == ("patrol", "revoked (media burst too long)")
    assert row.talker is None
    state.apply(control.FloorDeny(channel_id=2, cause="no permission"), T0 + 32)
    assert state.my_floor() == ("Traffic", "denied (no permission)")
    state.apply(FloorReleased(2), T0 + 33)
    assert state.my_floor() == ("Traffic", "idle")


def test_release_clears_own_talk() -> None:
    state = channel_state()
    state.apply(control.FloorGranted(channel_id=1, burst_id=9, duration_limit=30.0), T0)
    state.apply(FloorReleased(1), T0 + 2)
    assert state.channels[1].talker is None
    assert state.channels[1].my_floor == "idle"


def test_pre_emption_by_another_talker_ends_own_grant() -> None:
    state = channel_state()
    state.apply(control.FloorGranted(channel_id=1, burst_id=9, duration_limit=30.0), T0)
    state.apply(
        control.FloorTaken(channel_id=1, user_id="alice", priority=4, burst_id=10, since=T0 + 1),
        T0 + 1,
    )
    assert state.channels[1].my_floor == "idle"
    assert state.log[-1].text == "alice (alice) on patrol EMERGENCY"


def test_disconnect_clears_talkers() -> None:
    state = channel_state()
    state.apply(
        control.FloorTaken(channel_id=1, user_id="bob", priority=1, burst_id=1, since=T0), T0
    )
    state.apply(events.Disconnected("connection reset"), T0)
    assert state.connection == "disconnected"
    assert state.channels[1].talker is None
    state.apply(events.Connected("disp", 5, True), T0)
    assert state.connection == "connected"
    assert state.log[-1].text == "reconnected as disp"


def test_login_refused_and_errors_reach_the_status_line() -> None:
    state = ConsoleState("disp")
    state.apply(events.LoginRefused("credential_revoked", "lost phone"), T0)
    assert state.connection == "refused"
    assert "lost phone" in state.last_error
    state.apply(control.Error(code="forbidden", text="only a dispatcher"), T0)
    assert state.last_error == "forbidden: only a dispatcher"
    state.apply(Note("error", "no microphone"), T0)
    assert state.last_error == "no microphone"
    state.apply(events.Connected("disp", 1, False), T0)
    assert state.last_error == ""


def test_members_online_counts_presence() -> None:
    state = channel_state()
    assert state.members_online(1) == (0, 3)
    state.apply(presence("alice", "Alice Adams"), T0)
    state.apply(presence("bob", "Bob Brown", online=False, status="offline"), T0)
    state.apply(presence("zed", "Zed (not a member)"), T0)
    assert state.members_online(1) == (1, 3)
    assert state.members_online(99) == (0, 0)
    # The console itself counts once it is connected (the server never reports it to itself).
    state.apply(events.Connected("disp", 1, False), T0)
    assert state.members_online(1) == (2, 3)
    state.apply(events.Disconnected("gone"), T0)
    assert state.members_online(1) == (1, 3)
    # An older roster never replaces a newer one.
    state.apply(MembersKnown(1, ("disp",), 0), T0)
    assert state.members_online(1) == (1, 3)


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


def test_emergency_lifecycle() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    changed = state.apply(alert(), T0)
    assert Changed.ALARM in changed
    assert state.channel_emergency(1) is not None
    assert state.channel_list()[0].name == "patrol"
    assert state.unacknowledged()[0].alert_id == A1
    # The same alert again (re-sent at reconnect) does not ring again.
    assert state.apply(alert(), T0 + 1) == Changed.NONE
    state.apply(control.EmergencyAck(alert_id=A1, by_user="disp"), T0 + 2)
    assert state.unacknowledged() == []
    assert state.emergencies[A1].acked_by == "disp"
    assert state.channel_emergency(1) is not None  # acknowledged, still active
    state.apply(control.EmergencyCancel(alert_id=A1, by_user="alice"), T0 + 3)
    assert state.active_emergencies() == []
    assert state.channel_emergency(1) is None
    assert state.presence["alice"].status == "available"
    assert state.log[-1].text == "Alice Adams's emergency cancelled by Alice Adams"
    # A late duplicate of a cancelled alert stays cancelled.
    assert state.apply(alert(), T0 + 4) == Changed.NONE
    assert state.active_emergencies() == []


def test_channels_with_an_emergency_sort_first() -> None:
    state = channel_state()
    assert [r.name for r in state.channel_list()] == ["patrol", "Traffic"]
    state.apply(alert(A2, "bob", 2, T0), T0)
    assert [r.name for r in state.channel_list()] == ["Traffic", "patrol"]


def test_emergencies_order_and_selection() -> None:
    state = channel_state()
    state.apply(alert(A1, "alice", 1, T0), T0)
    state.apply(alert(A2, "bob", 2, T0 + 5), T0 + 5)
    assert state.selected_emergency() is not None
    assert state.selected_emergency().alert_id == A1  # type: ignore[union-attr]
    assert state.select_next_alert().alert_id == A2  # type: ignore[union-attr]
    assert state.select_next_alert().alert_id == A1  # type: ignore[union-attr]
    # Acknowledged alerts sort after unacknowledged ones.
    state.apply(control.EmergencyAck(alert_id=A1, by_user="disp"), T0 + 6)
    assert [e.alert_id for e in state.active_emergencies()] == [A2, A1]
    # Cancelling the selected alert moves the selection to what is left.
    state.selected_alert = A2
    state.apply(control.EmergencyCancel(alert_id=A2, by_user="disp"), T0 + 7)
    assert state.selected_alert == A1
    state.apply(control.EmergencyCancel(alert_id=A1, by_user="disp"), T0 + 8)
    assert state.selected_emergency() is None
    assert state.select_next_alert() is None


def test_ack_and_cancel_of_unknown_alerts_change_nothing() -> None:
    state = channel_state()
    assert state.apply(control.EmergencyAck(alert_id=A2, by_user="disp"), T0) == Changed.NONE
    assert state.apply(control.EmergencyCancel(alert_id=A2, by_user="disp"), T0) == Changed.NONE


def test_texts_unread_counts_and_receipts() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    state.apply(events.TextReceived(b"m" * 16, "alice", 1, "on scene", T0), T0)
    state.apply(events.TextReceived(b"n" * 16, "alice", None, "need backup", T0 + 1), T0 + 1)
    state.apply(events.TextReceived(b"o" * 16, "alice", None, "now!", T0 + 2), T0 + 2)
    patrol, direct = Conversation.channel(1), Conversation.user("alice")
    assert state.unread == {patrol: 1, direct: 2}
    assert state.unread_total() == 3
    assert [m.text for m in state.messages(direct)] == ["need backup", "now!"]
    assert state.mark_read(direct) is True
    assert state.mark_read(direct) is False
    assert state.unread_total() == 1
    assert state.conversation_title(patrol) == "#patrol"
    assert state.conversation_title(direct) == "@Alice Adams"
    state.apply(TextSent(b"s" * 16, "copy", T0 + 3, to_user="alice"), T0 + 3)
    sent = state.messages(direct)[-1]
    assert sent.outgoing and sent.from_user == "disp"
    assert state.unread.get(direct, 0) == 0
    state.apply(control.TextReceipt(message_id=b"s" * 16, kind="stored", by_user=""), T0)
    state.apply(control.TextReceipt(message_id=b"s" * 16, kind="delivered", by_user="alice"), T0)
    state.apply(control.TextReceipt(message_id=b"s" * 16, kind="read", by_user="alice"), T0)
    assert sent.stored and sent.delivered_to == {"alice"} and sent.read_by == {"alice"}
    unknown = control.TextReceipt(message_id=b"x" * 16, kind="read", by_user="alice")
    assert state.apply(unknown, T0) == Changed.NONE


def test_own_text_echoed_on_a_channel_is_not_unread() -> None:
    state = channel_state()
    state.apply(events.TextReceived(b"m" * 16, "disp", 1, "all units", T0), T0)
    assert state.unread_total() == 0


def test_conversation_needs_exactly_one_target() -> None:
    for bad in ({}, {"channel_id": 1, "user_id": "a"}):
        try:
            Conversation(**bad)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_messages_are_bounded_per_conversation() -> None:
    state = channel_state()
    for i in range(600):
        state.apply(TextSent(i.to_bytes(16, "big"), f"t{i}", T0 + i, to_channel=1), T0 + i)
    thread = state.messages(Conversation.channel(1))
    assert len(thread) == 500
    assert thread[0].text == "t100"
    # Receipts for texts that fell out are ignored, not kept forever.
    old = control.TextReceipt(message_id=(5).to_bytes(16, "big"), kind="read", by_user="a")
    assert state.apply(old, T0) == Changed.NONE


def test_log_coalesces_repeats_and_is_bounded() -> None:
    state = ConsoleState("disp", log_limit=10)
    for _ in range(5):
        state.apply(events.VoiceRejected(0, "malformed inner frame"), T0)
    assert len(state.log) == 1 and state.log[0].count == 5
    for i in range(20):
        state.apply(Note("note", f"n{i}"), T0 + i)
    assert len(state.log) == 10
    assert state.log[0].text == "n10"


def test_voice_frames_touch_activity_without_rerender() -> None:
    state = channel_state()
    frame = events.VoiceFrame(1, "alice", 1, 0, b"\x00", False, 1, T0)
    assert state.apply(frame, T0 + 9) == Changed.NONE
    assert state.channels[1].last_activity == T0 + 9


def test_keys_updated_logs_only_on_change() -> None:
    state = channel_state()
    state.apply(events.KeysUpdated(1, 2, 2), T0)
    assert state.log[-1].text == "patrol: roster v2, key epoch 2"
    assert state.apply(events.KeysUpdated(1, 2, 2), T0) == Changed.NONE


def test_unknown_events_change_nothing() -> None:
    state = channel_state()
    assert state.apply(object(), T0) == Changed.NONE
    assert state.apply(control.Pong(nonce=1), T0) == Changed.NONE


def test_csv_export() -> None:
    state = ConsoleState("disp")
    state.apply(Note("note", 'said "hi", then left'), 0.0)
    state.apply(events.TextReceived(b"m" * 16, "mallory", None, "=HYPERLINK(1)", 1.5), 1.5)
    state.apply(presence("mallory", "@evil"), 2.0)
    rows = list(csv.reader(io.StringIO(state.to_csv())))
    assert rows[0] == ["time_utc", "unix_time", "kind", "text", "count"]
    assert rows[1] == ["1970-01-01T00:00:00Z", "0.000", "note", 'said "hi", then left', "1"]
    assert rows[2][0] == "1970-01-01T00:00:01Z"
    assert rows[2][3] == "mallory -> you: =HYPERLINK(1)"
    assert len(rows) == 3


def test_csv_defuses_formula_cells() -> None:
    state = ConsoleState("disp")
    state.apply(Note("note", "=1+1"), 0.0)
    state.apply(Note("note", "-2"), 0.0)
    rows = list(csv.reader(io.StringIO(state.to_csv())))
    assert [r[3] for r in rows[1:]] == ["'=1+1", "'-2"]


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


def test_forged_audio_withdraws_the_verified_mark() -> None:
    state = ConsoleState("disp", "Dispatch")
    state.apply(
        control.ChannelList(channels=(control.ChannelInfo(channel_id=1, name="patrol"),)), T0
    )
    state.apply(
        control.FloorTaken(
            channel_id=1, user_id="alice", display_name="Alice", priority=1, burst_id=5, since=T0
        ),
        T0,
    )
    state.apply(events.TalkerVerified(1, "alice", "Alice", 5), T0)
    assert state.channels[1].verified
    state.apply(events.ForgedAudio(1, "alice", 5, "frames 3 do not match"), T0)
    assert not state.channels[1].verified
    assert state.log[-1].kind == "forged" and "alice" in state.log[-1].text


def test_unverified_audio_withdraws_the_mark_for_the_rest_of_the_burst_only() -> None:
    """Once audio of a burst went unverified (or was found forged), a statement that verifies
    later frames does not bring the mark back; the next burst starts afresh."""
    for withdrawn in (
        events.TalkerUnverified(1, "alice", 5, "1 frame(s) not covered"),
        events.ForgedAudio(1, "alice", 5, "frames 3 do not match"),
    ):
        state = ConsoleState("disp", "Dispatch")
        state.apply(
            control.ChannelList(channels=(control.ChannelInfo(channel_id=1, name="patrol"),)), T0
        )
        state.apply(
            control.FloorTaken(
                channel_id=1,
                user_id="alice",
                display_name="Alice",
                priority=1,
                burst_id=5,
                since=T0,
            ),
            T0,
        )
        state.apply(events.TalkerVerified(1, "alice", "Alice", 5), T0)
        assert state.channels[1].verified
        state.apply(withdrawn, T0 + 1)
        assert not state.channels[1].verified and state.channels[1].distrusted
        assert "alice" in state.log[-1].text
        state.apply(events.TalkerVerified(1, "alice", "Alice", 5), T0 + 2)
        assert not state.channels[1].verified
        state.apply(
            control.FloorTaken(
                channel_id=1,
                user_id="alice",
                display_name="Alice",
                priority=1,
                burst_id=6,
                since=T0,
            ),
            T0 + 3,
        )
        state.apply(events.TalkerVerified(1, "alice", "Alice", 6), T0 + 3)
        assert state.channels[1].verified and not state.channels[1].distrusted
