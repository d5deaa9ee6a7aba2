"""The call log: the latest private calls the relay recorded (a dispatcher sees every call,
an officer their own), newest first. Opened with ``L``; Esc closes it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from ptt_protocol import control
from tui.state import call_duration
from tui.widgets.cells import plain

COLUMNS = ("When", "Caller", "Callee", "Kind", "Lasted", "Outcome", "Ended by")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def record_cells(record: control.CallRecord) -> tuple[str, ...]:
    """One call log row, as the table shows it."""
    kind = "half duplex" if record.mode == control.CALL_HALF_DUPLEX else "full duplex"
    if record.emergency:
        kind = f"EMERGENCY {kind}"
    lasted = "-"
    if record.answered_at is not None and record.ended_at is not None:
        lasted = call_duration(record.ended_at - record.answered_at)
    return (
        _when(record.offered_at),
        record.caller,
        record.callee,
        kind,
        lasted,
        record.outcome or "going on",
        record.ended_by or ("relay" if record.outcome else ""),
    )


class CallLogScreen(ModalScreen[None]):
    """The latest calls, filled in when the relay's answer comes."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="call-log"):
            yield Label("Call log (newest first), asking the relay…", id="call-log-title")
            table: DataTable[object] = DataTable(id="call-log-table", cursor_type="row")
            table.add_columns(*COLUMNS)
            yield table

    def show(self, records: Sequence[control.CallRecord]) -> None:
        """Fill the table with the relay's answer."""
        table = self.query_one(DataTable)
        table.clear()
        for record in records:
            table.add_row(*(plain(cell) for cell in record_cells(record)))
        title = f"Call log: the latest {len(records)} call(s), newest first  (Esc closes)"
        self.query_one("#call-log-title", Label).update(title if records else "No calls yet")
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
