"""The call banner: the console's private call, under the emergency banner, while there is one.

An incoming call that waits for the dispatcher is loud (reverse, and red for an emergency
call) and says the keys that answer it; a call going on says who, how long and how the media
goes (end to end, direct or through TURN).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.state import ConsoleState, call_duration
from tui.widgets.cells import plain


class CallBanner(Static):
    """One line for the call, and its keys."""

    def show(self, state: ConsoleState, now: float) -> None:
        call = state.call
        self.display = call is not None
        self.set_class(call is not None and call.ringing_here, "-ringing")
        self.set_class(call is not None and call.emergency, "-emergency")
        if call is None:
            self.update("")
            return
        head = "EMERGENCY CALL" if call.emergency else "CALL"
        who = plain(state.call_peer(call), "bold")
        if call.ringing_here:
            line = Text.assemble(
                Text(f"☎ {head} from ", style="bold"), who, "  ", ("y answer  h refuse", "italic")
            )
        elif call.state == "connected" and call.connected_at is not None:
            path = "through TURN" if call.relayed else "direct"
            line = Text.assemble(
                f"☎ {head} with ",
                who,
                f"  {call_duration(now - call.connected_at)}  end to end, {path}",
            )
            if call.mode != "full_duplex":
                floor = "you talk" if call.talker == state.me else (call.talker or "floor free")
                line.append(f"  half duplex: {floor} (Space)")
            line.append("  h hang up", style="italic")
        else:
            doing = {"ringing": "ringing", "dialing": "calling"}.get(call.state, "connecting")
            line = Text.assemble(f"☎ {head} ", who, f"  {doing}…  ", ("h hang up", "italic"))
        line.no_wrap = True
        line.overflow = "ellipsis"
        self.update(line)
