"""The emergencies part: an alert's life, order and selection."""

from __future__ import annotations

from ptt_protocol import control
from tests.tui.state.samples import A1, A2, T0, alert, channel_state, presence
from tui.state import Changed


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
