"""The dispatcher's main screen: channels, presence, emergencies, messages, event log."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.events import DescendantFocus
from textual.screen import Screen
from textual.widgets import Footer, Input

from tui.screens.dialogs import FormDialog, MessageDialog
from tui.state import Conversation
from tui.widgets.banner import EmergencyBanner
from tui.widgets.channels import ChannelTable
from tui.widgets.eventlog import EventLog
from tui.widgets.messages import MessagesPane
from tui.widgets.presence import PresencePane, PresenceTable
from tui.widgets.status import StatusLine

if TYPE_CHECKING:
    from tui.app import DispatchApp


class MainScreen(Screen[None]):
    """Every key acts on the selected channel (channels table) or user (presence table)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "transmit", "Talk"),
        Binding("m", "message", "Msg"),
        Binding("a", "acknowledge", "Ack"),
        Binding("x", "cancel_alert", "Cancel"),
        Binding("e", "next_alert", "Next alert", show=False),
        Binding("n", "new_channel", "New"),
        Binding("plus", "add_member", "Add"),
        Binding("minus", "remove_member", "Del"),
        Binding("p", "patch", "Patch"),
        Binding("u", "unpatch", "Unpatch", show=False),
        Binding("r", "recall", "Recall"),
        Binding("w", "save_recall", "Save WAV", show=False),
        Binding("l", "export_log", "Log"),
        Binding("slash", "search", "Search", show=False),
        Binding("escape", "leave_search", "Back", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield EmergencyBanner(id="banner")
        with Grid(id="panes"):
            yield ChannelTable(id="channels")
            yield PresencePane(id="presence")
            yield MessagesPane(id="messages")
            yield EventLog(id="log")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def console(self) -> DispatchApp:
        return cast("DispatchApp", self.app)

    def on_mount(self) -> None:
        self.query_one(ChannelTable).focus()
        self.call_after_refresh(self.console.refresh_view)

    # --- what is selected -------------------------------------------------------------------

    @property
    def selected_channel(self) -> int | None:
        return self.query_one(ChannelTable).selected_channel

    @property
    def selected_user(self) -> str | None:
        return self.query_one(PresencePane).selected_user

    def _set_conversation(self, conversation: Conversation | None) -> None:
        pane = self.query_one(MessagesPane)
        if conversation != pane.conversation:
            pane.conversation = conversation
            self.console.refresh_view()

    # Re-rendering a table moves its cursor too, and the highlight messages arrive later:
    # only a move in the focused table that is still where the cursor is picks a conversation.

    def on_channel_table_selected(self, message: ChannelTable.Selected) -> None:
        table = self.query_one(ChannelTable)
        if (
            table.has_focus
            and message.channel_id is not None
            and message.channel_id == table.selected_channel
        ):
            self._set_conversation(Conversation.channel(message.channel_id))

    def on_presence_pane_selected(self, message: PresencePane.Selected) -> None:
        table = self.query_one(PresenceTable)
        if (
            table.has_focus
            and message.user_id is not None
            and message.user_id == table.selected_user
        ):
            self._set_conversation(Conversation.user(message.user_id))

    def on_presence_pane_filter_changed(self, message: PresencePane.FilterChanged) -> None:
        self.console.refresh_view()

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, ChannelTable) and self.selected_channel is not None:
            self._set_conversation(Conversation.channel(self.selected_channel))
        elif isinstance(event.widget, PresenceTable) and self.selected_user is not None:
            self._set_conversation(Conversation.user(self.selected_user))

    def _need_channel(self) -> int | None:
        channel_id = self.selected_channel
        if channel_id is None:
            self.notify("select a channel first", severity="warning")
        return channel_id

    # --- actions ------------------------------------------------------------------------------

    def action_transmit(self) -> None:
        channel_id = self._need_channel()
        if channel_id is not None:
            self.console.toggle_transmit(channel_id)

    def action_message(self) -> None:
        conversation = self.query_one(MessagesPane).conversation
        if conversation is None:
            self.notify("select a channel or a user first", severity="warning")
            return
        title = self.console.state.conversation_title(conversation)

        def send(text: str | None) -> None:
            if text:
                self.console.send_text(conversation, text)

        self.app.push_screen(MessageDialog(title), send)

    def action_acknowledge(self) -> None:
        self.console.acknowledge_selected()

    def action_cancel_alert(self) -> None:
        self.console.cancel_selected()

    def action_next_alert(self) -> None:
        self.console.state.select_next_alert()
        self.console.refresh_view()

    def action_new_channel(self) -> None:
        def create(values: tuple[str, ...] | None) -> None:
            if values and values[0]:
                members = [m.strip() for m in values[1].replace(" ", ",").split(",") if m.strip()]
                self.console.create_channel(values[0], members)

        self.app.push_screen(
            FormDialog(
                "New channel",
                [("Name", "e.g. incident-42"), ("Members", "user ids, e.g. alice, bob")],
            ),
            create,
        )

    def _member_dialog(self, adding: bool) -> None:
        channel_id = self._need_channel()
        if channel_id is None:
            return
        name = self.console.state.channel_name(channel_id)
        verb = "Add a member to" if adding else "Remove a member from"

        def change(values: tuple[str, ...] | None) -> None:
            if values and values[0]:
                self.console.change_member(channel_id, values[0], adding=adding)

        self.app.push_screen(FormDialog(f"{verb} {name}", [("User id", "e.g. alice")]), change)

    def action_add_member(self) -> None:
        self._member_dialog(True)

    def action_remove_member(self) -> None:
        self._member_dialog(False)

    def action_patch(self) -> None:
        channel_id = self._need_channel()
        if channel_id is None:
            return
        name = self.console.state.channel_name(channel_id)

        def patch(values: tuple[str, ...] | None) -> None:
            if values and values[0]:
                self.console.patch_channels(channel_id, values[0])

        self.app.push_screen(
            FormDialog(f"Patch {name} with", [("Channel name", "e.g. traffic")]), patch
        )

    def action_unpatch(self) -> None:
        channel_id = self._need_channel()
        if channel_id is not None:
            self.console.unpatch(channel_id)

    def action_recall(self) -> None:
        channel_id = self._need_channel()
        if channel_id is not None:
            self.console.recall(channel_id)

    def action_save_recall(self) -> None:
        channel_id = self._need_channel()
        if channel_id is not None:
            self.console.recall(channel_id, save=True)

    def action_export_log(self) -> None:
        self.console.export_log()

    def action_search(self) -> None:
        self.query_one("#presence-filter", Input).focus()

    def action_leave_search(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one(PresenceTable).focus()
