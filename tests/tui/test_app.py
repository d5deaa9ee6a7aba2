"""The console driven with the Pilot, fed through the client-event path with a fixed story.

The client is real but never started: events go in as :class:`ClientEvent` messages,
exactly as the client task posts them; operations that need the server fail, and the
console must show that and carry on.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from rich.text import Text
from textual.widgets import DataTable, Input, Static

from ptt_client import events
from ptt_client.client import RadioClient
from ptt_protocol import control
from tests.tui.story import ALERT, NOW, T0, shift
from tui.app import ClientEvent, DispatchApp
from tui.screens.dialogs import FormDialog, MessageDialog
from tui.screens.main import MainScreen
from tui.state import Conversation
from tui.widgets.banner import EmergencyBanner
from tui.widgets.channels import ChannelTable
from tui.widgets.messages import MessagesPane
from tui.widgets.presence import PresenceTable
from tui.widgets.status import StatusLine

SIZES = [(80, 24), (160, 48)]


class Clock:
    """The console's clock, moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(client: RadioClient, tmp_path: Path, clock: Clock | None = None) -> DispatchApp:
    return DispatchApp(
        client,
        start_client=False,
        clock=clock or Clock(NOW),
        tick_interval=0,
        export_dir=tmp_path,
    )


async def feed(app: DispatchApp, pilot, items=None) -> None:  # type: ignore[no-untyped-def]
    for event, at in items if items is not None else shift():
        app.post_message(ClientEvent(event, at))
    await pilot.pause()


async def settle(app: DispatchApp, pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait for the network work the keys started (not the client task, which never ends)."""
    network = [w for w in app.workers if w.group == "network"]
    if network:  # an empty list would mean "every worker" to wait_for_complete
        await app.workers.wait_for_complete(network)
    await pilot.pause()


def cell_text(table: DataTable[Text], row: int, column: int) -> str:
    return table.get_row_at(row)[column].plain


def rendered(widget: Static) -> str:
    content = widget.render()
    return content.plain if isinstance(content, Text) else str(content)


@pytest.mark.parametrize("size", SIZES)
async def test_story_renders_channels_presence_banner_and_status(
    offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=size) as pilot:
        await feed(app, pilot)
        channels = app.screen.query_one(ChannelTable)
        assert channels.row_count == 3
        # The channel with the emergency first, in red; then by name.
        assert [cell_text(channels, i, 0) for i in range(3)] == [
            "north-district",
            "patrol",
            "traffic",
        ]
        assert cell_text(channels, 0, 4) == "EMERGENCY"
        assert channels.get_row_at(0)[4].style == "bold white on red"
        # Bob has talked 12 s and his signature verified; Dave's has not (yet).
        assert cell_text(channels, 1, 1) == "✓ Bob Brown 12s"
        assert cell_text(channels, 2, 1) == "? Dave Dunn 3s"
        assert cell_text(channels, 1, 3) == "3/4"  # bob, alice and the console itself
        banner = app.screen.query_one(EmergencyBanner)
        assert banner.display and banner.has_class("-alarm")
        assert "EMERGENCY Erin Evans (erin) on north-district" in rendered(banner)
        assert "52.09074, 5.12142" in rendered(banner)
        presence = app.screen.query_one(PresenceTable)
        assert [presence.get_row_at(i)[0].plain for i in range(presence.row_count)] == [
            "Erin Evans",
            "Alice Adams",
            "Bob Brown",
            "Dave Dunn",
            "Carol Clark",
        ]
        status = rendered(app.screen.query_one(StatusLine))
        assert status.startswith("Dispatch One (disp) │ connected udp │ TX idle")
        assert app.bells == 1


async def test_talk_time_advances_with_the_clock(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    app = make_app(offline_client, tmp_path, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        clock.now = NOW + 5
        app._tick()
        await pilot.pause()
        assert cell_text(app.screen.query_one(ChannelTable), 1, 1) == "✓ Bob Brown 17s"
        # Still unacknowledged after the bell interval: it rings again.
        clock.now = NOW + 11
        app._tick()
        assert app.bells == 2
        app.post_message(ClientEvent(control.FloorIdle(channel_id=1), NOW + 11))
        await pilot.pause()
        assert cell_text(app.screen.query_one(ChannelTable), 1, 1) == ""


async def test_acknowledged_alert_stops_the_alarm_and_cancel_removes_it(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(app, pilot)
        banner = app.screen.query_one(EmergencyBanner)
        await feed(app, pilot, [(control.EmergencyAck(alert_id=ALERT, by_user="disp"), NOW)])
        assert banner.display and not banner.has_class("-alarm")
        assert "acknowledged by Dispatch One" in rendered(banner)
        assert cell_text(app.screen.query_one(ChannelTable), 0, 4) == "emerg (ack)"
        await feed(app, pilot, [(control.EmergencyCancel(alert_id=ALERT, by_user="erin"), NOW)])
        assert not banner.display
        assert cell_text(app.screen.query_one(ChannelTable), 0, 0) == "north-district"
        assert cell_text(app.screen.query_one(ChannelTable), 0, 4) == ""


async def test_operations_without_a_connection_show_an_error_and_change_nothing(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        await pilot.press("a")
        await settle(app, pilot)
        assert "acknowledging failed: not connected" in app.state.last_error
        assert app.state.unacknowledged()  # still not acknowledged
        assert isinstance(app.screen, MainScreen)
        status = rendered(app.screen.query_one(StatusLine))
        assert "acknowledging failed" in status


async def test_presence_search(offline_client: RadioClient, tmp_path: Path) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(app, pilot)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"en route")
        await pilot.pause()
        presence = app.screen.query_one(PresenceTable)
        assert presence.row_count == 1
        assert presence.get_row_at(0)[0].plain == "Dave Dunn"
        # Keys typed into the search box are text, not commands.
        assert app.state.unacknowledged()
        await pilot.press("escape")
        assert app.screen.focused is presence  # (app.focused: mypy keeps it an Input from above)


async def test_selecting_a_channel_shows_its_messages_and_clears_unread(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(app, pilot)
        patrol = Conversation.channel(1)
        assert app.state.unread.get(patrol) == 1
        await pilot.press("down")  # north-district -> patrol
        await pilot.pause()
        pane = app.screen.query_one(MessagesPane)
        assert pane.conversation == patrol
        assert "on scene, two vehicles" in rendered(pane.query_one("#thread", Static))
        assert app.state.unread.get(patrol, 0) == 0
        assert pane.border_title == "Messages #patrol"
        # The direct text from Dave is still unread, and says so.
        assert "@Dave Dunn 1" in rendered(pane.query_one("#unread", Static))
        # Moving to Dave in the presence table opens that conversation.
        await pilot.press("tab")  # into the search box
        await pilot.press("tab")  # into the table
        presence = app.screen.query_one(PresenceTable)
        assert app.focused is presence
        while presence.selected_user != "dave":
            await pilot.press("down")
        await pilot.pause()
        assert pane.conversation == Conversation.user("dave")
        assert app.state.unread_total() == 0


async def test_message_dialog_quick_reply_and_cancel(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        await pilot.press("m")
        assert isinstance(app.screen, MessageDialog)
        assert app.screen.target == "#north-district"
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("m")
        await pilot.press("f1")  # "Copy": sent at once (fails here: not connected)
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        assert "sending a text failed: no key for channel 3" in app.state.last_error


async def test_new_channel_dialog(offline_client: RadioClient, tmp_path: Path) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        await pilot.press("n")
        assert isinstance(app.screen, FormDialog)
        await pilot.press(*"incident-1", "enter", *"alice, bob", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, MainScreen)
        assert "creating incident-1 failed: not connected" in app.state.last_error
        await pilot.press("plus")
        assert isinstance(app.screen, FormDialog)
        assert app.screen.title_text == "Add a member to north-district"
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_export_log_writes_the_csv(offline_client: RadioClient, tmp_path: Path) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        await pilot.press("l")
        await pilot.pause()
        path = app.last_export
        assert path is not None and path.parent == tmp_path
        assert path.name == "dispatch-log-20260101-090100.csv"
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert rows[0] == ["time_utc", "unix_time", "kind", "text", "count"]
        texts = [row[3] for row in rows[1:]]
        assert "EMERGENCY Erin Evans (erin) on north-district" in texts
        assert "Bob Brown (bob) on patrol" in texts
        assert rows[1][:3] == ["2026-01-01T09:00:00Z", f"{T0:.3f}", "connection"]


async def test_export_to_a_directory_it_cannot_make_reports_an_error(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    app = make_app(offline_client, tmp_path / "a-file" / "logs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await pilot.pause()
        assert app.last_export is None
        assert app.state.last_error.startswith(
            f"cannot write the event log to {tmp_path / 'a-file' / 'logs'}"
        )


async def test_network_text_is_shown_as_text_not_markup(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        evil = control.PresenceUpdate(
            user_id="mallory",
            display_name="[bold red]Admin[/] \x1b[2J",
            online=True,
            status="available",
            last_seen=NOW,
        )
        await feed(app, pilot, [(evil, NOW)])
        presence = app.screen.query_one(PresenceTable)
        assert presence.get_row_at(0)[0].plain == "[bold red]Admin[/]  [2J"


async def test_a_flood_of_events_is_coalesced(offline_client: RadioClient, tmp_path: Path) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        flood: list[tuple[object, float]] = [
            (events.VoiceRejected(1, "frame refused: bad tag"), NOW)
        ] * 2000
        flood += [
            (events.VoiceFrame(1, "bob", 41, n, b"x", False, 1, NOW), NOW) for n in range(500)
        ]
        await feed(app, pilot, flood)
        assert app.state.log[-1].text == "patrol: frame refused: bad tag"
        assert app.state.log[-1].count == 2000
        assert isinstance(app.screen, MainScreen)


async def test_unpatch_only_ends_patches(offline_client: RadioClient, tmp_path: Path) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        await pilot.press("u")  # north-district is in no patch
        await settle(app, pilot)
        assert app.state.last_error == "north-district is not patched: nothing to end"
