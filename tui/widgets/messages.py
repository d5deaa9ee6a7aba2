"""Texts: the conversation of the selected channel or user, and unread counts of the others."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from tui.state import ChatMessage, ConsoleState, Conversation
from tui.widgets.cells import clock_time, plain


def receipt_mark(message: ChatMessage) -> Text:
    """``✓`` stored, ``✓✓`` delivered, ``read`` read by someone (outgoing texts only)."""
    if not message.outgoing:
        return Text("")
    if message.read_by:
        return Text(" read", style="green")
    if message.delivered_to:
        return Text(" ✓✓", style="green")
    if message.stored:
        return Text(" ✓", style="dim")
    return Text(" …", style="dim")


class MessagesPane(Vertical):
    """Shows one conversation; the app picks it from the selected channel or user."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Messages"
        self.conversation: Conversation | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="unread")
        with VerticalScroll(id="thread-scroll"):
            yield Static(id="thread")

    def show(self, state: ConsoleState, now: float) -> None:
        others = [
            (state.conversation_title(c), n)
            for c, n in state.unread.items()
            if n and c != self.conversation
        ]
        summary = Text("unread: ", style="dim") if others else Text("no other unread", "dim")
        for title, count in sorted(others):
            summary.append_text(plain(title, "bold yellow"))
            summary.append(f" {count}  ")
        summary.no_wrap = True
        summary.overflow = "ellipsis"
        self.query_one("#unread", Static).update(summary)
        lines: list[Text] = []
        if self.conversation is None:
            self.border_title = "Messages"
        else:
            self.border_title = f"Messages {state.conversation_title(self.conversation)}"
            for message in state.messages(self.conversation):
                who = "you" if message.outgoing else state.name_of(message.from_user)
                line = Text.assemble(
                    (clock_time(message.sent_at)[:5] + " ", "dim"),
                    plain(who, "bold cyan" if message.outgoing else "bold"),
                    ": ",
                    plain(message.text),
                    receipt_mark(message),
                )
                line.no_wrap = False
                lines.append(line)
        thread = self.query_one("#thread", Static)
        thread.update(Text("\n").join(lines) if lines else Text("no messages", style="dim"))
        self.query_one("#thread-scroll", VerticalScroll).scroll_end(animate=False)
        self.border_subtitle = "m message"
