"""Who is enrolled and online: status, channel, when last heard, location; with a search box."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from tui.state import ConsoleState, PresenceRow
from tui.widgets.cells import age, plain, status_text
from tui.widgets.columns import ColumnSpec
from tui.widgets.fitted import FittedTable


def status_cell(state: ConsoleState, row: PresenceRow, emergency: bool) -> Text:
    """The status; an enrolled officer who never logged in is "never seen"."""
    if not (row.online or emergency) and row.last_seen <= 0:
        return Text("never seen", style="dim")
    return status_text(row.status, row.online or emergency)


def heard_cell(state: ConsoleState, row: PresenceRow, now: float) -> Text:
    """How long ago the user last talked ("now" while on the air); empty if never heard."""
    if state.on_air(row.user_id):
        return Text("now", style="bold")
    return Text(age(state.heard.get(row.user_id), now))


class PresenceTable(FittedTable):
    """One row per user; the cursor row is the user the message key writes to."""

    # Who, their status and when they last talked matter most. "Since" (the last presence
    # change: online or offline since) gives way first; then the channel name is cut (a
    # cut name still reads) before the location goes (a cut coordinate is no use).
    SPECS = (
        ColumnSpec("user", "User", keep=8, min_width=10),
        ColumnSpec("status", "Status", keep=7, min_width=9),
        ColumnSpec("channel", "Channel", keep=4, min_width=7),
        ColumnSpec("heard", "Heard", keep=6),
        ColumnSpec("since", "Since", keep=2),
        ColumnSpec("location", "Location", keep=5),
    )

    @property
    def selected_user(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value


class PresencePane(Vertical):
    """The presence table under a filter input."""

    class Selected(Message):
        """The dispatcher moved to another user."""

        def __init__(self, user_id: str | None) -> None:
            super().__init__()
            self.user_id = user_id

    class FilterChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Presence"
        self.search = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="search user, status, channel  (/)", id="presence-filter")
        yield PresenceTable(id="presence-table")

    @property
    def table(self) -> PresenceTable:
        return self.query_one(PresenceTable)

    @property
    def selected_user(self) -> str | None:
        return self.table.selected_user

    def show(self, state: ConsoleState, now: float) -> None:
        cells = []
        for row in state.presence_rows(self.search):
            emergency = state.user_emergency(row.user_id) is not None
            name = row.display_name or row.user_id
            cells.append(
                (
                    row.user_id,
                    (
                        plain(name, "bold red" if emergency else ("" if row.online else "dim")),
                        status_cell(state, row, emergency),
                        plain(state.channel_name(row.channel_id)),
                        heard_cell(state, row, now),
                        Text(age(row.last_seen, now), style="dim"),
                        plain(row.location),
                    ),
                )
            )
        self.table.fill(cells)
        online = sum(1 for row in state.presence.values() if row.online)
        self.border_subtitle = f"{online}/{len(state.presence)} online"

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.search = event.value
        self.post_message(self.FilterChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.post_message(self.Selected(event.row_key.value))
