"""The console's broadcast group call (``b``, Space ends it) and its own imminent peril
(``i`` raises it, ``I`` cancels it), against a real server with real officers' radios."""

from __future__ import annotations

from pathlib import Path

from ptt_protocol import control
from tests.ptt_client.speech import long_recording
from tests.ptt_client.test_broadcast import heard_on, idle
from tests.tui.org import Field, keys_for
from tests.tui.test_app_live import console, monitoring, officers, select_channel, until
from tui.screens.picker import PickerDialog
from tui.widgets.banner import EmergencyBanner
from tui.widgets.channels import ChannelTable
from tui.widgets.status import StatusLine


async def test_b_broadcasts_to_the_picked_channels_one_way_and_space_ends_it(
    field: Field, tmp_path: Path
) -> None:
    patrol, traffic = field.channels["patrol"], field.channels["traffic"]
    app = console(field, tmp_path, talk_file=long_recording(tmp_path / "long.wav", 12.0))
    async with (
        app.run_test(size=(160, 48)) as pilot,
        officers(field, "alice", "carol") as (alice, carol),
    ):
        await monitoring(pilot, app, patrol, traffic)
        for officer, channel in ((alice, patrol), (carol, traffic)):
            await officer.affiliate(channel)
            await keys_for(officer, channel, 1)
        await select_channel(pilot, app, patrol)
        await pilot.press("b")
        await until(pilot, lambda: isinstance(app.screen, PickerDialog), "the channel picker")
        picker = app.screen
        assert isinstance(picker, PickerDialog)
        assert "traffic" in picker.shown and "patrol" not in picker.shown
        await pilot.press(*"traffic", "enter")
        for officer, channel in ((alice, patrol), (carol, traffic)):
            taken = await officer.wait_for(control.FloorTaken, lambda e: e.user_id == "disp")
            assert taken.channel_id == channel and taken.broadcast
            await heard_on(officer, channel)
        table = app.screen.query_one(ChannelTable)
        await until(
            pilot,
            lambda: all("BROADCAST" in table.get_row(str(c))[1].plain for c in (patrol, traffic)),
            "BROADCAST on both rows",
        )
        assert "BROADCAST patrol, traffic" in str(app.screen.query_one(StatusLine).render())
        assert any(e.text == "BROADCAST to patrol, traffic" for e in app.state.log)
        # One way: carol's press is refused with the cause.
        await carol.press()
        denied = await carol.wait_for(control.FloorDeny)
        assert denied.cause == "Broadcast in progress"
        await carol.release()
        await pilot.press("space")  # ends the broadcast
        for officer, channel in ((alice, patrol), (carol, traffic)):
            await idle(officer, channel)
        await until(pilot, lambda: not app.transmitting, "the broadcast to end")
        assert app.client.keys_down() == [] and app.client.broadcasting == ()
        await until(
            pilot,
            lambda: any(e.text == "broadcast to patrol, traffic ended" for e in app.state.log),
            "the end in the log",
        )
        assert not app.state.channels[patrol].broadcast


async def test_i_raises_the_dispatchers_own_imminent_peril_and_shift_i_cancels_it(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(control.Affiliated, lambda e: e.channel_id == patrol)
        await select_channel(pilot, app, patrol)
        await pilot.press("i")
        alert = await alice.wait_for(control.EmergencyAlert, lambda e: e.user_id == "disp")
        assert (alert.kind, alert.channel_id) == (control.ALERT_IMMINENT_PERIL, patrol)
        banner = app.screen.query_one(EmergencyBanner)
        await until(pilot, lambda: "YOURS" in str(banner.render()), "the banner")
        assert "IMMINENT PERIL" in str(banner.render())
        assert any(e.text == "IMMINENT PERIL raised by you on patrol" for e in app.state.log)
        await pilot.press("I")
        cancel = await alice.wait_for(control.EmergencyCancel)
        assert (cancel.alert_id, cancel.by_user) == (alert.alert_id, "disp")
        await until(pilot, lambda: not app.state.active_emergencies(), "the alert to go")
        assert app.client.emergency_alert is None
        assert any(e.text.startswith("your imminent peril cancelled") for e in app.state.log)
