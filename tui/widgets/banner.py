"""The emergency banner: red, on top, until every alert is acknowledged (then until cancelled)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.state import ConsoleState
from tui.widgets.cells import age, clock_time, plain


def _no_wrap(line: Text) -> Text:
    line.no_wrap = True
    line.overflow = "ellipsis"
    return line


class EmergencyBanner(Static):
    """One line per active alert; ``▶`` marks the one the acknowledge/cancel keys act on."""

    _shown: tuple[ConsoleState, float] | None = None

    def on_resize(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)  # the lines are split to fit the width

    def show(self, state: ConsoleState, now: float) -> None:
        self._shown = (state, now)
        active = state.active_emergencies()
        self.display = bool(active)
        self.set_class(bool(state.unacknowledged()), "-alarm")
        if not active:
            self.update("")
            return
        selected = state.selected_emergency()
        # Hidden until now, the banner has no width yet: it spans the screen (less padding).
        width = self.content_size.width or self.app.size.width - 2
        lines = []
        for alert in active:
            mark = "▶ " if selected is not None and alert is selected else "  "
            where = f" on {state.channel_name(alert.channel_id)}" if alert.channel_id else ""
            head = alert.label if alert.acked_by is None else alert.label.lower()
            who = f"{state.name_of(alert.user_id)} ({alert.user_id})"
            if alert.user_id == state.me:
                who = f"YOURS: {who}"  # the dispatcher's own, raised from this console
            line = Text.assemble(
                mark,
                Text(head, style="bold reverse" if alert.acked_by is None else "bold"),
                " ",
                plain(f"{who}{where}", "bold"),
                f"  {clock_time(alert.raised_at)} ({age(alert.raised_at, now)} ago)",
            )
            more = Text()
            if alert.location:
                more.append("  @ ")
                more.append_text(plain(alert.location))
            if alert.acked_by is not None:
                more.append("  acknowledged by ")
                more.append_text(plain(state.name_of(alert.acked_by)))
            if line.cell_len + more.cell_len > width:
                # Too narrow for one line: the location goes under it rather than be cut.
                lines.append(_no_wrap(line))
                line = Text("   ") + more
            else:
                line.append_text(more)
            lines.append(_no_wrap(line))
        keys = "a acknowledge  x cancel" + ("  e next" if len(active) > 1 else "")
        if any(alert.user_id == state.me for alert in active):
            keys += "  I cancel yours"
        lines.append(Text(f"  {keys}", style="italic"))
        text = Text("\n").join(lines)
        text.no_wrap = True
        text.overflow = "ellipsis"
        self.update(text)
