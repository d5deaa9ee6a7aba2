"""Private calls at the console (issue 13), against a real relay, with real officers' radios
(:class:`RadioClient` in this process) and real aiortc media on 127.0.0.1: a radio calls the
console, which rings until the dispatcher refuses (h) or answers (y); the console calls a
radio (c on the selected user), hangs up (h), and shows the call log (L).

The console has no sound card here: it talks from a WAV file and writes each call into its
listen directory, as ``ptt-dispatch`` does without one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import DataTable

from ptt_client import events
from ptt_client.audio import WavFileInput, load_wav
from ptt_client.calls.manager import Call
from ptt_client.client import RadioClient
from ptt_protocol import control
from tests.calls_fixture import loopback_ice
from tests.ptt_client.calls.pair import RecordingOutput
from tests.ptt_client.speech import similarity
from tests.tui.org import Field
from tests.tui.test_app_live import SAMPLES, console, officers, select_user, until
from tui.app import DispatchApp
from tui.screens.call_log import CallLogScreen
from tui.widgets.call_banner import CallBanner

__all__ = ["loopback_ice"]

DISPATCH_SPEECH = SAMPLES / "all_clear.wav"
OFFICER_SPEECH = SAMPLES / "backup_request.wav"


def banner(app: DispatchApp) -> str:
    widget = app.screen.query_one(CallBanner)
    return str(widget.render()) if widget.display else ""


def logged(app: DispatchApp, text: str) -> bool:
    return any(text in entry.text for entry in app.state.log)


def speaks(path: Path, heard: RecordingOutput | None = None) -> Any:
    def audio(call: Call) -> tuple[WavFileInput, RecordingOutput | None]:
        return WavFileInput(path, 20), heard

    return audio


async def ended(radio: RadioClient) -> events.CallEnded:
    return await radio.wait_for(events.CallEnded, timeout=15)


async def test_a_radio_calls_the_console_which_refuses_then_answers(
    field: Field, tmp_path: Path
) -> None:
    listen = tmp_path / "heard"
    app = console(field, tmp_path, talk_file=DISPATCH_SPEECH, listen_dir=listen)
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        heard_by_alice = RecordingOutput()
        alice.calls.audio = speaks(OFFICER_SPEECH, heard_by_alice)
        await until(pilot, lambda: app.state.connection == "connected", "the console to log in")
        bells = app.bells
        await alice.calls.dial("disp")
        await until(pilot, lambda: "y answer" in banner(app), "the call to ring at the console")
        assert "CALL from Alice Adams (alice)" in banner(app)
        assert logged(app, "INCOMING CALL from Alice Adams (alice)") and app.bells > bells
        await pilot.press("h")  # refuses the ringing call
        end = await ended(alice)
        assert end.reason == control.END_REFUSED and "disp refused" in end.text
        await until(pilot, lambda: app.state.call is None, "the refused call to go")

        await alice.calls.dial("disp")
        await until(pilot, lambda: "y answer" in banner(app), "the second call to ring")
        await pilot.press("y")
        await until(pilot, lambda: "end to end, direct" in banner(app), "the call to connect")
        await alice.wait_for(events.CallConnected, timeout=10)
        assert logged(app, "call with Alice Adams (alice) connected: end to end, direct")
        # The dispatcher's WAV reaches the officer; the officer's the console's recording.
        async with asyncio.timeout(15):
            # The speech, and a second for the call's setup and jitter buffer.
            await heard_by_alice.wait_for(len(load_wav(DISPATCH_SPEECH)) + 48_000)
        assert similarity(load_wav(DISPATCH_SPEECH), heard_by_alice.pcm()) > 0.8
        media = app.client.calls.active.media if app.client.calls.active else None
        assert media is not None
        frames = len(load_wav(OFFICER_SPEECH)) // 960 + 50  # and a second to spare
        await until(pilot, lambda: media.playout.stats.played >= frames, "alice's speech")
        await alice.calls.hangup()
        await until(pilot, lambda: app.state.call is None, "the call to end at the console")
        assert logged(app, "call with Alice Adams (alice) ended (hangup): alice hung up")
        await until(pilot, lambda: logged(app, "call with alice, "), "the recording's line")
    (recording,) = listen.glob("*_call_alice.wav")
    assert similarity(load_wav(OFFICER_SPEECH), load_wav(recording)) > 0.8


async def test_the_console_calls_the_selected_user_hangs_up_and_shows_the_call_log(
    field: Field, tmp_path: Path
) -> None:
    app = console(field, tmp_path, talk_file=DISPATCH_SPEECH)
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "bob") as (bob,):
        heard_by_bob = RecordingOutput()
        bob.calls.audio = speaks(OFFICER_SPEECH, heard_by_bob)
        await until(pilot, lambda: app.state.connection == "connected", "the console to log in")
        await until(
            pilot, lambda: (row := app.state.presence.get("bob")) and row.online, "bob online"
        )
        await select_user(pilot, app, "bob")
        await pilot.press("c")
        up = await bob.wait_for(events.CallConnected, timeout=10)
        assert (up.peer, up.outgoing, up.emergency) == ("disp", False, False)
        await until(pilot, lambda: "end to end, direct" in banner(app), "the call on the banner")
        assert logged(app, "calling Bob Brown (bob)")
        async with asyncio.timeout(15):
            await heard_by_bob.wait_for(len(load_wav(DISPATCH_SPEECH)) + 48_000)
        assert similarity(load_wav(DISPATCH_SPEECH), heard_by_bob.pcm()) > 0.8
        await pilot.press("h")
        end = await ended(bob)
        assert (end.reason, end.peer) == (control.END_HANGUP, "disp") and "disp hung up" in end.text
        await until(pilot, lambda: app.state.call is None, "the call to end")

        await pilot.press("L")
        await until(pilot, lambda: isinstance(app.screen, CallLogScreen), "the call log")
        await until(pilot, lambda: bool(app.state.call_log), "the relay's call log")
        table: DataTable[object] = app.screen.query_one("#call-log-table", DataTable)
        await until(pilot, lambda: table.row_count >= 1, "the call log's rows")
        cells = [str(cell) for cell in table.get_row_at(0)]
        assert cells[1:4] == ["disp", "bob", "full duplex"] and cells[5:] == ["hangup", "disp"]
        await pilot.press("escape")
        assert not isinstance(app.screen, CallLogScreen)


async def test_an_emergency_call_from_the_console_is_answered_at_once_by_a_ringing_radio(
    field: Field, tmp_path: Path
) -> None:
    """C on the selected officer: an emergency private call, answered even by a radio that
    would ring (manual answer), shown as such on both sides."""
    app = console(field, tmp_path, talk_file=DISPATCH_SPEECH)
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "bob") as (bob,):
        bob.calls.auto_answer = False
        await until(pilot, lambda: app.state.connection == "connected", "the console to log in")
        await until(
            pilot, lambda: (row := app.state.presence.get("bob")) and row.online, "bob online"
        )
        await select_user(pilot, app, "bob")
        await pilot.press("C")
        up = await bob.wait_for(events.CallConnected, timeout=10)
        assert (up.peer, up.emergency) == ("disp", True)
        await until(pilot, lambda: "end to end" in banner(app), "the call on the banner")
        assert "EMERGENCY CALL with Bob Brown" in banner(app) and logged(app, "EMERGENCY call to")
        await pilot.press("h")
        assert (await ended(bob)).reason == control.END_HANGUP


async def test_space_takes_the_floor_of_a_half_duplex_call_at_the_console(
    field: Field, tmp_path: Path
) -> None:
    app = console(field, tmp_path, talk_file=DISPATCH_SPEECH)
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        await until(pilot, lambda: app.state.connection == "connected", "the console to log in")
        await alice.calls.dial("disp", mode=control.CALL_HALF_DUPLEX)
        await until(pilot, lambda: "y answer" in banner(app), "the call to ring at the console")
        await pilot.press("y")
        await alice.wait_for(events.CallConnected, timeout=10)
        await until(pilot, lambda: "half duplex: floor free" in banner(app), "the free floor")
        await pilot.press("space")
        told = await alice.wait_for(control.CallTalker, lambda m: m.user_id == "disp")
        assert told.user_id == "disp"
        await until(pilot, lambda: "half duplex: you talk" in banner(app), "the console's floor")
        await pilot.press("space")
        await alice.wait_for(control.CallTalker, lambda m: m.user_id == "")
        await alice.calls.hangup()
        await until(pilot, lambda: app.state.call is None, "the call to end")
