"""Small modal dialogs: a form of one or more inputs, and the message composer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

QUICK_REPLIES: tuple[str, ...] = ("Copy", "Stand by", "Units en route", "Say again")
"""Canned replies a dispatcher sends with one key (F1..F4) from the message dialog."""


class FormDialog(ModalScreen[tuple[str, ...] | None]):
    """Asks for one or more values; Enter in the last field submits, Escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, fields: Sequence[tuple[str, str]], *, id: str | None = None):
        """``fields``: (label, placeholder) pairs."""
        super().__init__(id=id)
        self.title_text = title
        self.fields = list(fields)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            for index, (label, placeholder) in enumerate(self.fields):
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"field-{index}")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#field-0", Input).focus()

    def _values(self) -> tuple[str, ...]:
        return tuple(
            self.query_one(f"#field-{i}", Input).value.strip() for i in range(len(self.fields))
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        index = int((event.input.id or "field-0").rsplit("-", 1)[1])
        if index + 1 < len(self.fields):
            self.query_one(f"#field-{index + 1}", Input).focus()
        else:
            self.dismiss(self._values())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(self._values() if event.button.id == "ok" else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class MessageDialog(ModalScreen[str | None]):
    """Write a text to a channel or user, or send a quick reply with F1..F4."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        *(Binding(f"f{i + 1}", f"quick({i})", reply) for i, reply in enumerate(QUICK_REPLIES)),
    ]

    def __init__(self, target: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.target = target

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Message to {self.target}", classes="dialog-title")
            yield Input(placeholder="text, Enter to send", id="text")
            with Horizontal(classes="dialog-buttons"):
                for i, reply in enumerate(QUICK_REPLIES):
                    yield Button(f"F{i + 1} {reply}", id=f"quick-{i}", compact=True)

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        self.dismiss(text or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_quick(int((event.button.id or "quick-0").rsplit("-", 1)[1]))

    def action_quick(self, index: int) -> None:
        self.dismiss(QUICK_REPLIES[index])

    def action_cancel(self) -> None:
        self.dismiss(None)
