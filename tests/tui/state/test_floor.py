"""The floor part: talkers, the console's own floor, and the verified mark."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tests.tui.state.samples import T0, channel_state
from tui.state import Broadcasting, Changed, ConsoleState, FloorReleased


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


def test_voice_frames_touch_activity_without_rerender() -> None:
    state = channel_state()
    frame = events.VoiceFrame(1, "alice", 1, 0, b"\x00", False, 1, T0)
    assert state.apply(frame, T0 + 9) == Changed.NONE
    assert state.channels[1].last_activity == T0 + 9


def alice_takes_patrol(burst_id: int) -> control.FloorTaken:
    return control.FloorTaken(
        channel_id=1, user_id="alice", display_name="Alice", priority=1, burst_id=burst_id, since=T0
    )


def alice_verified_on_patrol() -> ConsoleState:
    """A console with one channel, patrol, on which Alice talks in burst 5, signature checked."""
    state = ConsoleState("disp", "Dispatch")
    state.apply(
        control.ChannelList(channels=(control.ChannelInfo(channel_id=1, name="patrol"),)), T0
    )
    state.apply(alice_takes_patrol(5), T0)
    state.apply(events.TalkerVerified(1, "alice", "Alice", 5), T0)
    return state


def test_forged_audio_withdraws_the_verified_mark() -> None:
    state = alice_verified_on_patrol()
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
        state = alice_verified_on_patrol()
        assert state.channels[1].verified
        state.apply(withdrawn, T0 + 1)
        assert not state.channels[1].verified and state.channels[1].distrusted
        assert "alice" in state.log[-1].text
        state.apply(events.TalkerVerified(1, "alice", "Alice", 5), T0 + 2)
        assert not state.channels[1].verified
        state.apply(alice_takes_patrol(6), T0 + 3)
        state.apply(events.TalkerVerified(1, "alice", "Alice", 6), T0 + 3)
        assert state.channels[1].verified and not state.channels[1].distrusted


def test_own_floor_changes_are_logged_and_followed_by_the_status_line() -> None:
    state = channel_state()
    steps: list[tuple[object, int, str]] = [
        (control.FloorQueuePosition(channel_id=2, position=3), 2, "queued #3 on Traffic"),
        (
            control.FloorGranted(channel_id=1, burst_id=9, duration_limit=30.0),
            1,
            "talking on patrol",
        ),
        (
            control.FloorRevoke(channel_id=1, cause="pre-empted"),
            1,
            "floor revoked on patrol: pre-empted",
        ),
        (control.FloorDeny(channel_id=2, cause="busy"), 2, "floor denied on Traffic: busy"),
    ]
    for i, (event, channel_id, line) in enumerate(steps):
        changed = state.apply(event, T0 + i)
        assert changed == Changed.CHANNELS | Changed.STATUS | Changed.LOG
        assert (state.log[-1].kind, state.log[-1].text) == ("floor", line)
        assert state.transmit_channel == channel_id


def test_withdrawn_marks_are_logged_with_the_reason() -> None:
    state = channel_state()
    state.apply(
        control.FloorTaken(channel_id=1, user_id="alice", priority=1, burst_id=5, since=T0), T0
    )
    forged = events.ForgedAudio(1, "alice", 5, "frames 3 do not match")
    assert state.apply(forged, T0) == Changed.CHANNELS | Changed.LOG
    assert (state.log[-1].kind, state.log[-1].text) == (
        "forged",
        "patrol: audio claimed as alice did not verify (frames 3 do not match)",
    )
    # A warning about a channel the console does not show is still logged.
    unverified = events.TalkerUnverified(3, "bob", 2, "1 frame(s) not covered")
    assert state.apply(unverified, T0) == Changed.CHANNELS | Changed.LOG
    assert (state.log[-1].kind, state.log[-1].text) == (
        "unverified",
        "#3: audio played as bob is not vouched for (1 frame(s) not covered)",
    )
    assert state.channels[1].distrusted


def test_another_dispatchers_broadcast_is_marked_and_logged_as_one() -> None:
    state = channel_state()
    taken = control.FloorTaken(
        channel_id=1, user_id="d2", display_name="Dispatch Two", priority=2, burst_id=3,
        since=T0, broadcast=True,
    )  # fmt: skip
    state.apply(taken, T0)
    assert state.channels[1].broadcast
    assert state.log[-1].text == "BROADCAST by Dispatch Two (d2) on patrol"
    state.apply(control.FloorIdle(channel_id=1), T0 + 2)
    assert not state.channels[1].broadcast


def test_the_consoles_own_broadcast_is_marked_on_each_channel_until_it_ends() -> None:
    state = channel_state()
    state.apply(Broadcasting((1,)), T0)
    assert state.log[-1].text == "BROADCAST to patrol"
    state.apply(control.FloorGranted(channel_id=1, burst_id=4, duration_limit=60), T0)
    assert state.channels[1].broadcast and state.log[-1].text == "BROADCAST (one way) on patrol"
    state.apply(FloorReleased(1), T0 + 1)
    state.apply(Broadcasting(()), T0 + 1)
    assert not state.channels[1].broadcast and state.broadcasting == ()
    assert state.log[-1].text == "broadcast to patrol ended"
