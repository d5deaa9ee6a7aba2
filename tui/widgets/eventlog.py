"""The event log: every talk burst, alert, text, key change and error, newest at the bottom."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from tui.state import ConsoleState
from tui.widgets.cells import clock_time, plain

SHOWN = 300
"""Entries on screen; the whole log (up to ``tui.state.LOG_LIMIT``) goes to the CSV export."""

KIND_STYLES = {
    "emergency": "bold red",
    "error": "red",
    "rejected": "yellow",
    "forged": "bold red",
    "unverified": "bold yellow",
    "talk": "cyan",
    "floor": "green",
    "keys": "magenta",
    "text": "blue",
    "recall": "green",
}


class EventLog(VerticalScroll):
    """The last :data:`SHOWN` entries, one line each; follows the end unless scrolled up."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Event log"
        self.border_subtitle = "l export CSV"
        self.can_focus = True

    def compose(self) -> ComposeResult:
        yield Static(id="log-lines")

    def show(self, state: ConsoleState, now: float) -> None:
        follow = self.scroll_y >= self.max_scroll_y
        lines = []
        entries = list(state.log)[-SHOWN:]
        for entry in entries:
            style = KIND_STYLES.get(entry.kind, "")
            line = Text.assemble(
                (clock_time(entry.at), "dim"), " ", (f"{entry.kind:<10}", style), " "
            )
            line.append_text(plain(entry.text, style))
            if entry.count > 1:
                line.append(f" (x{entry.count})", style="dim")
            lines.append(line)
        text = Text("\n").join(lines) if lines else Text("nothing yet", style="dim")
        text.no_wrap = True
        text.overflow = "ellipsis"
        self.query_one("#log-lines", Static).update(text)
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)
