"""Issue 11, item 4, against a real server: officers who never logged in are listed and can
be texted, "Heard" comes from the burst log, the newest emergency is the one acknowledged,
and the member picker works by name."""

from __future__ import annotations

import time
from pathlib import Path

from ptt_client import events
from ptt_client.audio import WavFileInput
from ptt_client.voice import Transmitter
from ptt_protocol import control
from tests.tui.org import Field, recorded
from tests.tui.test_app_live import (
    SAMPLES,
    console,
    monitoring,
    officers,
    select_channel,
    select_user,
    until,
)
from tui.screens.dialogs import MessageDialog
from tui.screens.picker import PickerDialog
from tui.state import Conversation
from tui.widgets.presence import PresenceTable


def presence_cells(app: object, user_id: str) -> dict[str, str]:
    table = app.screen.query_one(PresenceTable)  # type: ignore[attr-defined]
    shown = [spec.key for spec in table.SPECS if spec.key in table.column_widths]
    return dict(zip(shown, (cell.plain for cell in table.get_row(user_id)), strict=True))


async def test_an_officer_who_never_logged_in_is_listed_and_gets_a_text_later(
    field: Field, tmp_path: Path
) -> None:
    app = console(field, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await monitoring(pilot, app, field.channels["traffic"])
        # carol is enrolled but has never logged in: listed, named from her credential.
        await until(pilot, lambda: "carol" in app.state.verified_names, "carol's verified name")
        assert presence_cells(app, "carol")["user"] == "Carol Clark"
        assert presence_cells(app, "carol")["status"] == "never seen"
        assert app.state.presence["carol"].online is False
        await select_user(pilot, app, "carol")
        await pilot.press("m")
        assert isinstance(app.screen, MessageDialog)
        await pilot.press(*"report to the station", "enter")
        chat = Conversation.user("carol")
        await until(
            pilot,
            lambda: any(m.stored for m in app.state.messages(chat)),
            "the server to store the text for her",
        )
        async with officers(field, "carol") as (carol,):
            text = await carol.wait_for(events.TextReceived, lambda e: e.from_user == "disp")
            assert text.text == "report to the station"
            await until(pilot, lambda: presence_cells(app, "carol")["status"] == "available", "")


async def test_heard_comes_from_the_burst_log_for_talk_before_the_console_started(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    async with officers(field, "alice") as (alice,):
        await alice.affiliate(patrol)
        before = time.time()
        result = await Transmitter(alice).talk(
            WavFileInput(SAMPLES / "medical.wav"), channel_id=patrol, duration=0.4
        )
        assert result.outcome == "granted"
        await recorded(alice, patrol, "alice", 1)
        app = console(field, tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: "alice" in app.state.heard, "when alice was last heard")
            assert before <= app.state.heard["alice"] <= time.time()
            await until(pilot, lambda: app.state.presence.get("alice") is not None, "alice")
            cells = presence_cells(app, "alice")
            assert cells["heard"].endswith("s"), cells  # seconds ago, not her login time
            assert "bob" not in app.state.heard  # never talked: no "Heard" at all
            assert presence_cells(app, "bob")["heard"] == ""


async def test_a_acknowledges_the_newest_emergency(field: Field, tmp_path: Path) -> None:
    """Two alerts, the second raised later: `a` acknowledges the second, not the one left
    over from before."""
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with (
        app.run_test(size=(80, 24)) as pilot,
        officers(field, "alice", "bob") as (alice, bob),
    ):
        await monitoring(pilot, app, patrol)
        for officer in (alice, bob):
            await officer.affiliate(patrol)
            await officer.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        old = await bob.raise_emergency()
        await until(pilot, lambda: old in app.state.emergencies, "the first alert")
        new = await alice.raise_emergency()
        await until(pilot, lambda: new in app.state.emergencies, "the second alert")
        assert [e.alert_id for e in app.state.active_emergencies()] == [new, old]
        await pilot.press("a")
        ack = await alice.wait_for(control.EmergencyAck, lambda e: e.alert_id == new)
        assert ack.by_user == "disp"
        await until(pilot, lambda: app.state.emergencies[new].acked_by == "disp", "the ack")
        assert app.state.emergencies[old].acked_by is None


async def test_remove_a_member_by_name_from_the_picker(field: Field, tmp_path: Path) -> None:
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        await monitoring(pilot, app, patrol)
        await until(pilot, lambda: "bob" in app.state.verified_names, "names")
        await select_channel(pilot, app, patrol)
        await pilot.press("minus")
        dialog = app.screen
        assert isinstance(dialog, PickerDialog)
        assert dialog.shown == ["alice", "bob"]  # patrol's members, by name
        await pilot.press(*"brown", "down", "enter")
        assert dialog.picker_input.value == "bob"
        await pilot.press("enter")
        await until(
            pilot,
            lambda: any("bob removed from patrol" in e.text for e in app.state.log),
            "the rekey",
        )
        assert app.state.channels[patrol].members == ("disp", "alice")
