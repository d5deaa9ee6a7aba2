"""The connection part: disconnects, refused logins and errors in the status line."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tests.tui.state.samples import T0, channel_state
from tui.state import NOTICE_SECONDS, ConsoleState, Note


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


def test_an_error_leaves_the_status_line_after_a_while_or_at_the_next_success() -> None:
    """Issue 11: a stale error stayed in the status line for the rest of the shift."""
    state = ConsoleState("disp")
    state.apply(Note("error", "acknowledging failed: not connected"), T0)
    notice = state.status_notice(T0 + NOTICE_SECONDS - 1)
    assert notice is not None and notice.error
    assert notice.text == "acknowledging failed: not connected"
    assert state.status_notice(T0 + NOTICE_SECONDS) is None  # time in: no timer in the model
    assert state.status_notice(T0 - 5) is not None  # a clock that stepped back hides nothing
    assert state.log[-1].text == "acknowledging failed: not connected"  # the log keeps it
    # The next action that goes through replaces it at once.
    state.apply(Note("error", "recall failed"), T0 + 100)
    state.apply(Note("note", "event log exported to /var/log/x.csv"), T0 + 101)
    notice = state.status_notice(T0 + 101)
    assert notice is not None and not notice.error
    assert notice.text == "event log exported to /var/log/x.csv"
    assert state.last_error == ""
    # A reconnect ends an error about the connection, but not the note of a success.
    state.apply(control.Error(code="forbidden", text="no"), T0 + 102)
    state.apply(events.Connected("disp", 1, True), T0 + 103)
    assert state.status_notice(T0 + 103) is None
