"""The emergencies part: an alert's life, order and selection."""

from __future__ import annotations

import msgspec

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
    # The newest alert is listed first and selected: the acknowledge key acts on it.
    assert [e.alert_id for e in state.active_emergencies()] == [A2, A1]
    assert state.selected_emergency() is not None
    assert state.selected_emergency().alert_id == A2  # type: ignore[union-attr]
    assert state.select_next_alert().alert_id == A1  # type: ignore[union-attr]
    assert state.select_next_alert().alert_id == A2  # type: ignore[union-attr]
    # Acknowledged alerts sort after unacknowledged ones.
    state.apply(control.EmergencyAck(alert_id=A2, by_user="disp"), T0 + 6)
    assert [e.alert_id for e in state.active_emergencies()] == [A1, A2]
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


def test_an_alert_left_from_an_earlier_run_does_not_keep_the_selection() -> None:
    """Issue 11: a demo emergency raised yesterday was selected above the new one, so the
    acknowledge key acknowledged the wrong one."""
    state = channel_state()
    state.apply(alert(A1, "alice", 1, T0 - 86400), T0)  # re-sent at login: still active
    assert state.selected_emergency().alert_id == A1  # type: ignore[union-attr]
    state.apply(alert(A2, "bob", 2, T0 + 60), T0 + 60)
    assert state.selected_emergency().alert_id == A2  # type: ignore[union-attr]
    assert [e.alert_id for e in state.active_emergencies()] == [A2, A1]
    # An alert that arrives late but was raised before the selected one does not take over.
    A3 = b"\x03" * 16
    state.apply(alert(A3, "carol", 1, T0 + 30), T0 + 61)
    assert state.selected_emergency().alert_id == A2  # type: ignore[union-attr]
    # Once the selected one is acknowledged, a new alert is selected whenever it was raised.
    state.apply(control.EmergencyAck(alert_id=A2, by_user="disp"), T0 + 62)
    state.selected_alert = A2
    A4 = b"\x04" * 16
    state.apply(alert(A4, "dave", 1, T0 + 10), T0 + 63)
    assert state.selected_emergency().alert_id == A4  # type: ignore[union-attr]


def test_an_imminent_peril_is_shown_as_such_and_rings_again_when_it_becomes_an_emergency() -> None:
    state = channel_state()
    state.apply(presence("alice", "Alice Adams"), T0)
    peril = msgspec.structs.replace(alert(), kind=control.ALERT_IMMINENT_PERIL)
    assert Changed.ALARM in state.apply(peril, T0)
    shown = state.emergencies[A1]
    assert shown.label == "IMMINENT PERIL"
    assert state.log[-1].text.startswith("IMMINENT PERIL Alice Adams (alice)")
    assert state.apply(peril, T0 + 1) == Changed.NONE  # re-sent: nothing new
    # Her emergency press upgraded the same alert on the relay: the console says so.
    assert Changed.ALARM in state.apply(alert(), T0 + 2)
    assert shown.label == "EMERGENCY" and state.log[-1].text == "EMERGENCY Alice Adams"
