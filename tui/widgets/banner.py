"""The emergency banner: red, on top, until every alert is acknowledged (then until cancelled)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.state import ConsoleState
from tui.widgets.cells import age, clock_time, plain


class EmergencyBanner(Static):
    """One line per active alert; ``▶`` marks the one the acknowledge/cancel keys act on."""

    def show(self, state: ConsoleState, now: float) -> None:
        active = state.active_emergencies()
        self.display = bool(active)
        self.set_class(bool(state.unacknowledged()), "-alarm")
        if not active:
            self.update("")
            return
        selected = state.selected_emergency()
        lines = []
        for alert in active:
            mark = "▶ " if selected is not None and alert is selected else "  "
            where = f" on {state.channel_name(alert.channel_id)}" if alert.channel_id else ""
            head = "EMERGENCY" if alert.acked_by is None else "emergency"
            line = Text.assemble(
                mark,
                Text(head, style="bold reverse" if alert.acked_by is None else "bold"),
                " ",
                plain(f"{state.name_of(alert.user_id)} ({alert.user_id}){where}", "bold"),
                f"  {clock_time(alert.raised_at)} ({age(alert.raised_at, now)} ago)",
            )
            if alert.location:
                line.append("  @ ")
                line.append(plain(alert.location))
            if alert.acked_by is not None:
                line.append("  acknowledged by ")
                line.append(plain(state.name_of(alert.acked_by)))
            line.no_wrap = True
            line.overflow = "ellipsis"
            lines.append(line)
        keys = "a acknowledge  x cancel" + ("  e next" if len(active) > 1 else "")
        lines.append(Text(f"  {keys}", style="italic"))
        text = Text("\n").join(lines)
        text.no_wrap = True
        text.overflow = "ellipsis"
        self.update(text)
