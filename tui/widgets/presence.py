"""Who is online, their status, channel and location; emergencies first; with a search box."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input

from tui.state import ConsoleState
from tui.widgets.cells import age, fill_table, plain, status_text


class PresenceTable(DataTable[Text]):
    """One row per user; the cursor row is the user the message key writes to."""

    COLUMNS = (
        ("user", "User"),
        ("status", "Status"),
        ("channel", "Channel"),
        ("seen", "Seen"),
        ("location", "Location"),
    )

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

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
                        status_text(row.status, row.online or emergency),
                        plain(state.channel_name(row.channel_id)),
                        Text(age(row.last_seen, now)),
                        plain(row.location),
                    ),
                )
            )
        fill_table(self.table, cells)
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
