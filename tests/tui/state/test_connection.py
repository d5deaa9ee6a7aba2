"""The connection part: disconnects, refused logins and errors in the status line."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tests.tui.state.samples import T0, channel_state
from tui.state import ConsoleState, Note


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
