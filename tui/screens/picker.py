"""A form whose last field picks users: a list of names and user ids that typing filters.

The dispatcher knows officers by name, the server by user id: the list shows both (from
presence, which holds every enrolled user), typing a part of either filters it, and
choosing a row (Down, then Enter, or a click) puts its user id in the field. A typed id
still works as it is. With ``multiple``, each choice is added to a comma-separated list
and typing filters on the id being typed after the last comma.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.screens.dialogs import FormDialog
from tui.widgets.cells import plain

SHOWN_CHOICES = 200
"""Rows the list shows at most (typing narrows a large organisation down)."""


def matching_users(candidates: Sequence[tuple[str, str]], typed: str) -> list[tuple[str, str]]:
    """The (user id, name) pairs whose id or name contains ``typed`` (case-insensitive):
    those that start with it first, then by name."""
    needle = typed.strip().lower()
    found = [
        (user_id, name)
        for user_id, name in candidates
        if not needle or needle in user_id.lower() or needle in name.lower()
    ]

    def order(item: tuple[str, str]) -> tuple[bool, str, str]:
        user_id, name = item
        starts = user_id.lower().startswith(needle) or name.lower().startswith(needle)
        return (not starts, (name or user_id).lower(), user_id)

    return sorted(found, key=order)


def _last_token(value: str) -> tuple[str, str]:
    """(everything up to the id being typed, the id being typed) of a comma list."""
    head, _, tail = value.rpartition(",")
    return (head + ", " if head else "", tail.strip())


class PickerDialog(FormDialog):
    """A :class:`FormDialog` whose last field has a user picker under it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "to_list", "Choose from the list"),
    ]

    def __init__(
        self,
        title: str,
        fields: Sequence[tuple[str, str]],
        candidates: Sequence[tuple[str, str]],
        *,
        multiple: bool = False,
        id: str | None = None,
    ) -> None:
        """``fields``: (label, placeholder) pairs, the last one picks; ``candidates``:
        (user id, name) pairs."""
        super().__init__(title, fields, id=id)
        self.candidates = list(candidates)
        self.multiple = multiple

    @property
    def picker_input(self) -> Input:
        return self.query_one(f"#field-{len(self.fields) - 1}", Input)

    def compose(self) -> ComposeResult:
        last = len(self.fields) - 1
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            for index, (label, placeholder) in enumerate(self.fields):
                yield Label(label)
                yield Input(placeholder=placeholder, id=f"field-{index}")
                if index == last:
                    yield OptionList(id="picker-list")
            with Horizontal(classes="dialog-buttons"):
                yield Button("OK", variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self._show_choices("")

    @property
    def shown(self) -> list[str]:
        """The user ids the list shows, in order."""
        options = self.query_one("#picker-list", OptionList)
        return [options.get_option_at_index(i).id or "" for i in range(options.option_count)]

    def _show_choices(self, typed: str) -> None:
        options = self.query_one("#picker-list", OptionList)
        options.clear_options()
        for user_id, name in matching_users(self.candidates, typed)[:SHOWN_CHOICES]:
            label = Text.assemble(plain(name or user_id, "bold"), "  ", plain(user_id, "dim"))
            options.add_option(Option(label, id=user_id))
        if options.option_count:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is not self.picker_input:
            return
        event.stop()
        typed = _last_token(event.value)[1] if self.multiple else event.value
        self._show_choices(typed)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        user_id = event.option.id or ""
        field = self.picker_input
        if self.multiple:
            head, _ = _last_token(field.value)
            field.value = f"{head}{user_id}, "
        else:
            field.value = user_id
        field.focus()
        field.cursor_position = len(field.value)

    def action_to_list(self) -> None:
        options = self.query_one("#picker-list", OptionList)
        if self.focused is self.picker_input and options.option_count:
            options.focus()
