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
from tui.screens.picker import PickerDialog
from tui.state import Changed, ConsoleState, Conversation, Note
from tui.widgets.banner import EmergencyBanner
from tui.widgets.call_banner import CallBanner
from tui.widgets.channels import ChannelTable
from tui.widgets.eventlog import EventLog
from tui.widgets.messages import MessagesPane
from tui.widgets.presence import PresencePane, PresenceTable
from tui.widgets.status import StatusLine

if TYPE_CHECKING:
    from tui.app import DispatchApp


_PANES = Binding.Group("Pane")
_MEMBERS = Binding.Group("Member")


class MainScreen(Screen[None]):
    """Every key acts on the selected channel (channels table) or user (presence table)."""

    # Every key is in the footer (the most used first: an 80-column footer shows those) and
    # in the keys panel (?), which lists them all at any width.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "transmit", "Talk"),
        Binding("m", "message", "Msg"),
        Binding("M", "message_user", "Msg user", key_display="M"),
        Binding("a", "acknowledge", "Ack"),
        Binding("x", "cancel_alert", "Cancel"),
        Binding("e", "next_alert", "Next alert"),
        Binding("question_mark", "app.show_help_panel", "Keys", key_display="?"),
        Binding("tab", "app.focus_next", "Next pane", group=_PANES),
        Binding(
            "shift+tab", "app.focus_previous", "Previous pane", key_display="⇧tab", group=_PANES
        ),
        Binding("n", "new_channel", "New"),
        Binding("plus", "add_member", "Add", group=_MEMBERS),
        Binding("minus", "remove_member", "Remove", group=_MEMBERS),
        Binding("p", "patch", "Patch"),
        Binding("u", "unpatch", "Unpatch"),
        Binding("b", "broadcast", "Broadcast"),
        Binding("i", "raise_peril", "Peril"),
        Binding("I", "cancel_own_alert", "Cancel my alert", key_display="I", show=False),
        Binding("D", "delete_channel", "Delete channel", show=False),
        Binding("r", "recall", "Recall"),
        Binding("w", "save_recall", "Save WAV", show=False),
        Binding("l", "export_log", "Log"),
        # Private calls: not in the footer, which is full at 160 columns; the call banner
        # says the keys a call needs while there is one, and ? lists them all.
        Binding("c", "call", "Call the selected user", show=False),
        Binding("C", "emergency_call", "Emergency call", key_display="C", show=False),
        Binding("y", "answer_call", "Answer the call", show=False),
        Binding("h", "hang_up", "Hang up / refuse the call", show=False),
        Binding("L", "call_log", "Call log", key_display="L", show=False),
        Binding("slash", "search", "Search"),
        Binding("escape", "leave_search", "Back", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield EmergencyBanner(id="banner")
        yield CallBanner(id="call-banner")
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

    def render_state(
        self, state: ConsoleState, now: float, changed: Changed | None, *, transmitting: bool
    ) -> list[bytes]:
        """Re-render the parts that ``changed`` (all when None). Returns the ids of the texts
        that are now read (their conversation is on screen), for the app to tell the senders."""
        every = changed is None
        parts = Changed.NONE if changed is None else changed
        messages = self.query_one(MessagesPane)
        read: list[bytes] = []
        if messages.conversation is not None and state.unread.get(messages.conversation):
            read = state.take_unread(messages.conversation)
            parts |= Changed.MESSAGES | Changed.STATUS
        if every or parts & (Changed.STATUS | Changed.MESSAGES):
            self.query_one(StatusLine).show(state, now, transmitting=transmitting)
        if every or parts & Changed.STATUS:
            self.query_one(CallBanner).show(state, now)
        if every or parts & Changed.EMERGENCIES:
            self.query_one(EmergencyBanner).show(state, now)
        if every or parts & Changed.CHANNELS:
            self.query_one(ChannelTable).show(state, now)
        if every or parts & Changed.PRESENCE:
            self.query_one(PresencePane).show(state, now)
        if every or parts & Changed.MESSAGES:
            messages.show(state, now)
        if every or parts & Changed.LOG:
            self.query_one(EventLog).show(state, now)
        return read

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
        if self.console.calls.half_duplex:
            self.console.calls.toggle_talk()  # a half-duplex call's floor, as a radio's PTT
            return
        channel_id = self._need_channel()
        if channel_id is not None:
            self.console.toggle_transmit(channel_id)

    def action_broadcast(self) -> None:
        """A broadcast group call to the selected channel and the ones picked (by name)."""
        channel_id = self._need_channel()
        if channel_id is None:
            return
        state = self.console.state
        name = state.channel_name(channel_id)

        def broadcast(values: tuple[str, ...] | None) -> None:
            if values is not None:
                others = [n.strip() for n in values[0].split(",") if n.strip()]
                self.console.broadcast_channels(channel_id, others)

        choices = [
            (row.name, "") for row in state.channels.values() if row.channel_id != channel_id
        ]
        field = [("Also to (channel names, or none: Enter)", "e.g. traffic, k9")]
        title = f"Broadcast on {name}, one way, until Space"
        self.app.push_screen(PickerDialog(title, field, choices, multiple=True), broadcast)

    def action_raise_peril(self) -> None:
        channel_id = self._need_channel()
        if channel_id is not None:
            self.console.raise_peril(channel_id)

    def action_cancel_own_alert(self) -> None:
        self.console.cancel_own_alert()

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

    def action_message_user(self) -> None:
        """Write to any user, online or not (the server keeps texts for later delivery)."""

        def write(values: tuple[str, ...] | None) -> None:
            if values and values[0]:
                conversation = Conversation.user(values[0])
                self._set_conversation(conversation)
                self.action_message()

        field = [("To (type a name or an id)", "e.g. alice")]
        choices = self.console.state.user_choices()
        self.app.push_screen(PickerDialog("Message a user", field, choices), write)

    def _call(self, emergency: bool) -> None:
        """The user selected in the presence pane (when it has the focus), else one picked."""
        table = self.query_one(PresenceTable)
        if table.has_focus and table.selected_user is not None:
            self.console.calls.dial(table.selected_user, emergency=emergency)
            return

        def call(values: tuple[str, ...] | None) -> None:
            if values and values[0]:
                self.console.calls.dial(values[0], emergency=emergency)

        title = "Emergency call to" if emergency else "Call"
        field = [("User (type a name or an id)", "e.g. alice")]
        self.app.push_screen(PickerDialog(title, field, self.console.state.user_choices()), call)

    def action_call(self) -> None:
        self._call(False)

    def action_emergency_call(self) -> None:
        self._call(True)

    def action_answer_call(self) -> None:
        self.console.calls.answer()

    def action_hang_up(self) -> None:
        self.console.calls.hang_up()

    def action_call_log(self) -> None:
        self.console.calls.show_log()

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
            PickerDialog(
                "New channel",
                [("Name", "e.g. incident-42"), ("Members", "names or user ids, e.g. alice, bob")],
                self.console.state.user_choices(),
                multiple=True,
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

        state = self.console.state
        members = state.channels[channel_id].members if channel_id in state.channels else ()
        choices = (
            [c for c in state.user_choices() if c[0] not in members]
            if adding
            else state.user_choices(members)
        )
        field = [("User (type a name or an id)", "e.g. alice")]
        self.app.push_screen(PickerDialog(f"{verb} {name}", field, choices), change)

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

    def action_delete_channel(self) -> None:
        channel_id = self._need_channel()
        if channel_id is None:
            return
        name = self.console.state.channel_name(channel_id)

        def delete(values: tuple[str, ...] | None) -> None:
            # Typing the name is the confirmation: one stray key must not delete a channel.
            if values and values[0] == name:
                self.console.delete_channel(channel_id)
            elif values:
                self.console.apply(Note("error", f"{name} not deleted: the name did not match"))

        self.app.push_screen(
            FormDialog(f"Delete {name}? Type its name", [("Channel name", name)]), delete
        )

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
