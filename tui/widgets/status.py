"""The status line: who the console is, the connection, and its own floor state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.state import ConsoleState, call_duration
from tui.widgets.cells import plain

FLOOR_STYLES = {
    "granted": "bold white on green",
    "requested": "bold black on yellow",
    "queued": "bold black on yellow",
    "denied": "bold white on red",
    "revoked": "bold white on red",
}


class StatusLine(Static):
    """``Dispatch One (disp) | connected udp | TX patrol: granted 3s | 2 unread``."""

    def show(self, state: ConsoleState, now: float, *, transmitting: bool = False) -> None:
        connection_style = "green" if state.connection == "connected" else "bold red"
        connection = state.connection + (f" {state.media_path}" if state.media_path else "")
        line = Text.assemble(
            plain(f"{state.my_name or state.me} ({state.me})", "bold"),
            " │ ",
            Text(connection, style=connection_style),
            " │ TX",
        )
        channel, floor = state.my_floor()
        if transmitting and floor == "idle":
            floor = "requested"
        key = floor.split(" ", 1)[0]
        if channel:
            line.append(" ")
            line.append_text(plain(channel))
            line.append(":")
        row = state.channels.get(state.transmit_channel or -1)
        seconds = ""
        if key == "granted" and row is not None:
            seconds = f" {state.talk_seconds(row, now)}s"
        line.append(f" {floor}{seconds} ", style=FLOOR_STYLES.get(key, ""))
        if state.broadcasting:
            line.append(" │ ")
            names = ", ".join(state.channel_name(c) for c in state.broadcasting)
            line.append_text(plain(f"BROADCAST {names}", "bold reverse"))
        unread = state.unread_total()
        if unread:
            line.append(" │ ")
            line.append(f"{unread} unread", style="bold yellow")
        call = state.call
        if call is not None:
            line.append(" │ ")
            ringing = call.ringing_here
            what = "CALL from" if ringing else "CALL"
            style = "bold white on red" if ringing or call.emergency else "bold"
            line.append(f"{what} ", style=style)
            line.append_text(plain(call.peer, style))
            if call.state == "connected" and call.connected_at is not None:
                line.append(f" {call_duration(now - call.connected_at)}")
                line.append(" TURN" if call.relayed else " direct")
        notice = state.status_notice(now)
        if notice is not None:
            line.append(" │ ")
            line.append_text(plain(notice.text, "red" if notice.error else "green"))
        line.no_wrap = True
        line.overflow = "ellipsis"
        self.update(line)
