"""The channels table: who talks where, for how long, verified or not, and emergencies."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from tui.state import ChannelRow, ConsoleState
from tui.widgets.cells import age, plain
from tui.widgets.columns import ColumnSpec
from tui.widgets.fitted import FittedTable

VERIFIED = "✓"
UNVERIFIED = "?"
DISTRUSTED = "✗"
BROADCAST = "BROADCAST"


def talker_cell(state: ConsoleState, row: ChannelRow, now: float) -> Text:
    """``✓ Alice Adams 12s`` (green check once the burst signature verified; a red cross once
    audio of the burst was found forged or not covered by the signature); ``BROADCAST`` before
    the name of a dispatcher's broadcast group call (TS 22.179 6.2.3)."""
    if row.talker is None:
        return Text("")
    if row.distrusted:
        mark = Text(DISTRUSTED, style="bold red")
    elif row.verified:
        mark = Text(VERIFIED, style="bold green")
    else:
        mark = Text(UNVERIFIED, "bold yellow")
    name = "you" if row.talker == state.me else (row.talker_name or state.name_of(row.talker))
    style = "bold red" if row.talker_priority >= 4 else "bold"
    cell = Text.assemble(mark, " ", plain(name, style), f" {state.talk_seconds(row, now)}s")
    if row.broadcast:
        cell = Text.assemble(mark, " ", Text(BROADCAST, "bold reverse"), " ", cell[2:])
    cell.no_wrap = True
    cell.overflow = "ellipsis"
    return cell


def emergency_cell(state: ConsoleState, row: ChannelRow) -> Text:
    alert = state.channel_emergency(row.channel_id)
    if alert is None:
        return Text("")
    peril = alert.kind == "imminent_peril"
    if alert.acked_by is None:
        return Text("PERIL" if peril else "EMERGENCY", style="bold white on red")
    return Text("peril (ack)" if peril else "emerg (ack)", style="bold red")


class ChannelTable(FittedTable):
    """One row per channel; the cursor row is the channel the keys act on."""

    # The channel and who talks on it matter most; the last activity gives way first.
    SPECS = (
        ColumnSpec("channel", "Channel", keep=6, min_width=8),
        ColumnSpec("talker", "Talker", keep=5, min_width=12),
        ColumnSpec("queue", "Q", keep=2),
        ColumnSpec("online", "On", keep=3),
        ColumnSpec("alert", "Alert", keep=4, min_width=9),
        ColumnSpec("last", "Last", keep=1),
    )

    class Selected(Message):
        """The dispatcher moved to another channel."""

        def __init__(self, channel_id: int | None) -> None:
            super().__init__()
            self.channel_id = channel_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Channels"

    @property
    def selected_channel(self) -> int | None:
        if self.row_count == 0:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    def show(self, state: ConsoleState, now: float) -> None:
        """Render ``state``'s channels, keeping the cursor on the same channel."""
        rows = state.channel_list()
        cells = []
        for row in rows:
            online, total = state.members_online(row.channel_id)
            name_style = "bold" if row.affiliated else "dim"
            queue = str(row.queue_position) if row.my_floor == "queued" else ""
            cells.append(
                (
                    str(row.channel_id),
                    (
                        plain(row.name, name_style),
                        talker_cell(state, row, now),
                        Text(queue),
                        Text(f"{online}/{total}"),
                        emergency_cell(state, row),
                        Text(age(row.last_activity, now)),
                    ),
                )
            )
        self.fill(cells)
        self.border_subtitle = f"{len(rows)} channels"

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        value = event.row_key.value
        self.post_message(self.Selected(int(value) if value is not None else None))
