"""Issue 11, item 4: the console shows what it has (Pilot, fed the fixed story).

Long names and locations in full, every key in the footer, pickers with names and ids,
errors that leave the status line, and the event log exported where state belongs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widget import Widget
from textual.widgets import Footer, Input

from ptt_client.client import RadioClient
from ptt_protocol import control
from tests.tui.story import NOW, T0
from tests.tui.test_app import SIZES, Clock, feed, make_app, rendered, settle
from tui.app import DispatchApp
from tui.screens.picker import PickerDialog
from tui.state import LocationText
from tui.widgets.channels import ChannelTable
from tui.widgets.presence import PresenceTable
from tui.widgets.status import StatusLine

LONG_NAME = "Officer Dupont-Lefebvre"
PLACE = "48.85661, 2.35222"


def dupont_talks() -> list[tuple[object, float]]:
    """An officer with a long name logs in, reports a place, then talks on patrol: after
    the channel table was built, as on a real shift."""
    return [
        (control.FloorIdle(channel_id=1), NOW - 10),
        (
            control.PresenceUpdate(
                user_id="dupont",
                display_name=LONG_NAME,
                online=True,
                status="available",
                channel_id=1,
                last_seen=NOW - 9,
            ),
            NOW - 9,
        ),
        (LocationText("dupont", PLACE), NOW - 8),
        (
            control.FloorTaken(
                channel_id=1,
                user_id="dupont",
                display_name=LONG_NAME,
                priority=1,
                burst_id=77,
                since=NOW - 3,
            ),
            NOW - 3,
        ),
    ]


def lines(widget: Widget) -> list[str]:
    """What ``widget`` shows, line by line."""
    return [widget.render_line(y).text for y in range(widget.size.height)]


async def test_long_names_and_locations_show_in_full_at_160x48(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(app, pilot)
        await feed(app, pilot, dupont_talks())
        channels = app.screen.query_one(ChannelTable)
        patrol = next(line for line in lines(channels) if "patrol" in line)
        assert f"? {LONG_NAME} 3s" in patrol, patrol
        presence = app.screen.query_one(PresenceTable)
        dupont = next(line for line in lines(presence) if "Dupont" in line)
        assert LONG_NAME in dupont and PLACE in dupont, dupont
        assert "now" in dupont  # heard: he is on the air
        erin = next(line for line in lines(presence) if "Erin" in line)
        assert "north-district" in erin and "52.09074, 5.12142" in erin, erin


@pytest.mark.parametrize("size", SIZES)
async def test_no_table_overflows_its_pane(
    offline_client: RadioClient, tmp_path: Path, size: tuple[int, int]
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=size) as pilot:
        await feed(app, pilot)
        await feed(app, pilot, dupont_talks())
        for table in (app.screen.query_one(ChannelTable), app.screen.query_one(PresenceTable)):
            assert table.virtual_size.width <= table.scrollable_content_region.width, table.id
            assert table.max_scroll_x == 0, table.id
        # At 80 columns the name is cut last: it keeps its minimum, the location goes first.
        widths = app.screen.query_one(PresenceTable).column_widths
        assert widths["user"] >= 10 and ("location" not in widths or size[0] > 80)


async def test_every_key_is_in_the_footer_with_a_description(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(app, pilot)
        shown = {
            key: binding.description
            for key, (_, binding, _, _) in app.screen.active_bindings.items()
            if binding.show and binding.description
        }
        for key in ("u", "tab", "shift+tab", "e", "slash", "question_mark", "M", "plus"):
            assert key in shown, key
        footer = rendered_footer(app)
        for text in ("u Unpatch", "tab ⇧tab Pane", "e Next alert", "? Keys", "/ Search"):
            assert text in footer, footer
        # Tab moves between the panes, as the footer says.
        assert app.focused is app.screen.query_one(ChannelTable)
        await pilot.press("tab")
        assert isinstance(app.focused, Input)


def rendered_footer(app: DispatchApp) -> str:
    """The footer's keys and labels, as it shows them."""
    footer = app.screen.query_one(Footer)
    return " ".join(str(w.render()).strip() for w in footer.query("FooterKey, FooterLabel"))


async def test_add_member_picker_lists_names_and_ids_and_filters(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    app = make_app(offline_client, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await feed(app, pilot)
        await pilot.press("plus")  # on north-district: disp, alice and erin are members
        dialog = app.screen
        assert isinstance(dialog, PickerDialog)
        assert dialog.shown == ["bob", "carol", "dave"]
        await pilot.press(*"dunn")  # a part of the name
        assert dialog.shown == ["dave"]
        await pilot.press("down", "enter")  # choose: the id goes in the field
        assert dialog.picker_input.value == "dave"
        await pilot.press("enter")
        await settle(app, pilot)
        assert "adding dave failed: not connected" in app.state.last_error
        # A typed id still works as it is.
        await pilot.press("plus", *"zed", "enter")
        await settle(app, pilot)
        assert "adding zed failed: not connected" in app.state.last_error


async def test_stale_errors_leave_the_status_line(
    offline_client: RadioClient, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    app = make_app(offline_client, tmp_path, clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await feed(app, pilot)
        status = app.screen.query_one(StatusLine)
        await pilot.press("a")
        await settle(app, pilot)
        assert "acknowledging failed: not connected" in rendered(status)
        clock.now = NOW + 31
        app._tick()  # the console's once-a-second refresh
        await pilot.pause()
        assert "acknowledging failed" not in rendered(status)
        # An error is replaced by the next action that goes through.
        await pilot.press("a")
        await settle(app, pilot)
        assert "acknowledging failed" in rendered(status)
        await pilot.press("l")
        await pilot.pause()
        assert "acknowledging failed" not in rendered(status)
        assert f"event log exported to {app.last_export}" in rendered(status)


async def test_l_writes_the_log_to_the_state_directory_not_the_current_one(
    offline_client: RadioClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd, state_home = tmp_path / "cwd", tmp_path / "state"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_STATE_HOME", str(state_home))
    app = DispatchApp(offline_client, start_client=False, clock=lambda: T0, tick_interval=0)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("l")
        await pilot.pause()
        path = app.last_export
        assert path is not None and path.is_file()
        assert path.parent == state_home / "fieldradio" and path.is_absolute()
        assert os.listdir(cwd) == []
        assert str(path) in rendered(app.screen.query_one(StatusLine))
    # Without XDG_STATE_HOME: ~/.local/state/fieldradio.
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    app = DispatchApp(offline_client, start_client=False, clock=lambda: T0, tick_interval=0)
    assert app.export_dir == tmp_path / "home" / ".local" / "state" / "fieldradio"
