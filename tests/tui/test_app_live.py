"""The console against a real server, with simulated officers in the same event loop.

Officers are real :class:`RadioClient` instances talking real WAV samples through
:class:`ptt_client.voice.Transmitter`; the console is driven with the Pilot. Waits
are for conditions (the screen or an officer's events), bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from crypto.keyring import DEFAULT_SWITCH_DELAY
from ptt_client import channel_admin, events
from ptt_client.audio import NullOutput, WavFileInput, WavFileOutput
from ptt_client.client import RadioClient
from ptt_client.voice import Transmitter
from ptt_protocol import control
from tests.logwatch import watching
from tests.ptt_client.speech import long_recording
from tests.tui.org import Field, recorded
from tests.udp_drops import udp_drops
from tui.app import DispatchApp
from tui.screens.dialogs import FormDialog, MessageDialog
from tui.screens.main import MainScreen
from tui.state import Conversation
from tui.widgets.banner import EmergencyBanner
from tui.widgets.channels import ChannelTable
from tui.widgets.messages import MessagesPane
from tui.widgets.presence import PresenceTable

SAMPLES = Path(__file__).resolve().parents[2] / "ptt_client" / "samples"


async def until(
    pilot: Pilot[Any], condition: Callable[[], object], what: str, timeout: float = 10.0
) -> None:
    """Let the app run until ``condition()`` holds (the Pilot's way: the screen has no event to
    wait on). ``timeout`` only keeps a broken test from hanging: no test's verdict is how long
    this took (timing goals are benches: tests/bench/test_timing_goals.py)."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await pilot.pause(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@asynccontextmanager
async def officers(field: Field, *users: str, **kw: Any) -> AsyncIterator[list[RadioClient]]:
    clients = [field.client(user, **kw) for user in users]
    for client in clients:
        await client.start()
    try:
        for client in clients:
            await client.wait_connected()
        yield clients
    finally:
        for client in clients:
            await client.stop()


def console(field: Field, tmp_path: Path, **kw: Any) -> DispatchApp:
    return DispatchApp(field.client("disp"), export_dir=tmp_path, **kw)


async def monitoring(pilot: Pilot[Any], app: DispatchApp, *channel_ids: int) -> None:
    await until(
        pilot,
        lambda: all(
            (row := app.state.channels.get(c)) is not None and row.affiliated and row.epoch >= 1
            for c in channel_ids
        ),
        "the console to monitor its channels",
    )


async def select_channel(pilot: Pilot[Any], app: DispatchApp, channel_id: int) -> None:
    table = app.screen.query_one(ChannelTable)
    table.focus()
    while table.cursor_row > 0:
        await pilot.press("up")
    for _ in range(table.row_count):
        if table.selected_channel == channel_id:
            return
        await pilot.press("down")
    assert table.selected_channel == channel_id


async def select_user(pilot: Pilot[Any], app: DispatchApp, user_id: str) -> None:
    """Focus the presence table and walk to ``user_id``'s row as a user would: up to the
    top, then down."""
    await until(pilot, lambda: user_id in app.state.presence, f"{user_id}'s presence")
    table = app.screen.query_one(PresenceTable)
    table.focus()
    await until(
        pilot,
        lambda: app.screen.query_one(MessagesPane).conversation is not None,
        "a conversation",
    )
    rows = len(app.state.presence)
    for key in ["up"] * rows + ["down"] * rows:
        await pilot.pause()
        if table.selected_user == user_id:
            break
        await pilot.press(key)
    assert table.selected_user == user_id, sorted(app.state.presence)


async def test_talker_shows_and_is_verified(field: Field, tmp_path: Path) -> None:
    patrol = field.channels["patrol"]
    speaker = NullOutput()
    app = console(field, tmp_path, audio_output=speaker)
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        talk = asyncio.create_task(
            Transmitter(alice).talk(
                WavFileInput(SAMPLES / "backup_request.wav"), channel_id=patrol, duration=1.5
            )
        )
        table = app.screen.query_one(ChannelTable)
        # The console shows who holds the floor (TS 22.179's 1 s for it is a bench:
        # tests/bench/test_timing_goals.py).
        await until(
            pilot,
            lambda: "Alice Adams" in table.get_row(str(patrol))[1].plain,
            "alice on the channel row",
        )
        # Her burst signature arrives within a second of talking: the mark turns into a check.
        await until(
            pilot, lambda: table.get_row(str(patrol))[1].plain.startswith("✓ Alice Adams"), "✓"
        )
        result = await talk
        assert result.outcome == "granted" and result.frames_sent == 75
        await until(pilot, lambda: app.state.channels[patrol].talker is None, "floor idle")
        # The console played her (decrypted, decoded) voice: 75 frames of 960 samples, but for
        # the last frame or two a loaded machine can deliver after their playout slot, once
        # the FloorIdle ended the burst (a late last frame is lost, as on the air).
        try:
            await until(pilot, lambda: speaker.samples_written >= 73 * 960, "her voice played")
        except AssertionError:
            raise AssertionError(f"{speaker.samples_written / 960:g} of 75 frames played") from None
        assert table.get_row(str(patrol))[1].plain == ""
        assert any("Alice Adams talked" in entry.text for entry in app.state.log)


async def test_emergency_banner_acknowledge_and_cancel_reach_the_officer(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        alert_id = await alice.raise_emergency(52.37022, 4.89517)
        banner = app.screen.query_one(EmergencyBanner)
        await until(pilot, lambda: banner.display and banner.has_class("-alarm"), "the banner")
        assert app.bells >= 1
        # The console opened the sealed location itself (the server only relayed it).
        await until(
            pilot,
            lambda: app.state.emergencies[alert_id].location == "52.37022, 4.89517",
            "the alert's location",
        )
        await pilot.press("a")
        ack = await alice.wait_for(control.EmergencyAck, lambda e: e.alert_id == alert_id)
        assert ack.by_user == "disp"
        await until(pilot, lambda: not banner.has_class("-alarm"), "the banner to calm down")
        assert banner.display  # acknowledged, not over
        await pilot.press("x")
        cancel = await alice.wait_for(control.EmergencyCancel, lambda e: e.alert_id == alert_id)
        assert cancel.by_user == "disp"
        await until(pilot, lambda: not banner.display, "the banner to go")
        assert alice.emergency_alert is None


async def test_removing_an_officer_rekeys_and_his_keys_no_longer_open_the_channel(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    skew = [0.0]
    recall_out = WavFileOutput(tmp_path / "recall.wav")
    app = console(field, tmp_path, audio_output=recall_out, play_live=False)
    async with (
        app.run_test(size=(160, 48)) as pilot,
        officers(field, "alice", clock=lambda: time.time() + skew[0]) as (alice,),
        officers(field, "bob") as (bob,),
    ):
        await monitoring(pilot, app, patrol)
        for officer in (alice, bob):
            await officer.affiliate(patrol)
        envelopes_for_bob: list[int] = []
        bob.add_listener(
            lambda e: (
                envelopes_for_bob.append(e.epoch) if isinstance(e, control.KeyEnvelope) else None
            )
        )
        await select_channel(pilot, app, patrol)
        await pilot.press("minus")
        assert isinstance(app.screen, FormDialog)
        await pilot.press(*"bob", "enter")
        await until(
            pilot,
            lambda: any(
                "bob removed from patrol: rekeyed to epoch 2" in e.text for e in app.state.log
            ),
            "the rekey",
        )
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol and e.epoch == 2)
        await bob.wait_for(control.Deaffiliated, lambda e: e.channel_id == patrol)
        assert app.state.channels[patrol].members == ("disp", "alice")
        assert bob.keyring.channels[patrol].current_epoch == 1
        assert 2 not in envelopes_for_bob
        # Alice talks under the new epoch (her clock past the sender's switch delay).
        skew[0] = 2 * DEFAULT_SWITCH_DELAY
        result = await Transmitter(alice).talk(
            WavFileInput(SAMPLES / "medical.wav"), channel_id=patrol, duration=0.6
        )
        assert result.outcome == "granted" and result.frames_sent == 30
        # The console recalls and opens it; bob's keys cannot.
        await until(pilot, lambda: app.state.channels[patrol].talker is None, "floor idle")
        burst = await recorded(alice, patrol, "alice", 30)
        await pilot.press("r")
        await until(pilot, lambda: app.last_recall is not None, "the console's recall")
        assert app.last_recall is not None
        assert app.last_recall.burst.burst_key == burst.burst_key
        assert len(app.last_recall.opus) == 30 and app.last_recall.refused == 0
        # ... and replays it: decoded locally, 30 frames of 20 ms at 48 kHz.
        await until(pilot, lambda: recall_out.samples_written == 30 * 960, "the replay")
        frames = await channel_admin.recall_frames(alice, patrol, burst.burst_key)
        by_bob = channel_admin.open_recalled(bob, patrol, burst, frames)
        assert by_bob.opus == () and by_bob.refused == 30
    recall_out.close()


async def test_messages_flow_both_ways(field: Field, tmp_path: Path) -> None:
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        await alice.send_text("on scene, two vehicles", to_channel=patrol)
        await alice.send_text("need a tow truck", to_user="disp")
        channel_chat, direct_chat = Conversation.channel(patrol), Conversation.user("alice")
        await until(
            pilot,
            lambda: app.state.messages(channel_chat) and app.state.messages(direct_chat),
            "both texts",
        )
        assert app.state.messages(channel_chat)[0].text == "on scene, two vehicles"
        assert app.state.messages(direct_chat)[0].text == "need a tow truck"
        assert app.state.unread.get(direct_chat) == 1
        # Reply on the channel: select it, m, type, Enter.
        await select_channel(pilot, app, patrol)
        await pilot.press("m")
        assert isinstance(app.screen, MessageDialog)
        await pilot.press(*"copy that", "enter")
        received = await alice.wait_for(events.TextReceived, lambda e: e.from_user == "disp")
        assert (received.text, received.to_channel) == ("copy that", patrol)
        # A quick reply straight to alice, from her presence row.
        await select_user(pilot, app, "alice")
        await pilot.press("m", "f2")
        direct = await alice.wait_for(events.TextReceived, lambda e: e.to_channel is None)
        assert (direct.from_user, direct.text) == ("disp", "Stand by")
        assert app.state.unread_total() == 0
        # Receipts come back to the sender.
        await until(
            pilot,
            lambda: any(m.delivered_to for m in app.state.messages(direct_chat) if m.outgoing),
            "the delivery receipt",
        )


async def test_transmit_from_a_wav_file_is_heard_by_an_officer(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    app = console(field, tmp_path, talk_file=SAMPLES / "all_clear.wav")
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        heard: list[events.VoiceFrame] = []
        verified: list[events.TalkerVerified] = []
        rejected: list[events.VoiceRejected] = []
        alice.add_listener(lambda e: heard.append(e) if isinstance(e, events.VoiceFrame) else None)
        alice.add_listener(
            lambda e: verified.append(e) if isinstance(e, events.TalkerVerified) else None
        )
        alice.add_listener(
            lambda e: rejected.append(e) if isinstance(e, events.VoiceRejected) else None
        )
        drops = field.server.metrics.relay.drops
        late = drops["not_floor_holder"]
        # The relay's and alice's receiving sockets: what the kernel dropped there (a full
        # receive buffer while this loaded process was held up) never reached the code.
        assert alice.media.udp is not None
        ports = (field.server.media_port, alice.media.udp.get_extra_info("sockname")[1])
        kernel_before = sum(udp_drops(port) for port in ports)
        await select_channel(pilot, app, patrol)
        await pilot.press("space")
        taken = await alice.wait_for(control.FloorTaken, lambda e: e.channel_id == patrol)
        assert (taken.user_id, taken.priority) == ("disp", 2)
        # Not a poll for "granted": the Pilot's press waits for the process to go idle (up to
        # about 2 s), and sending a 2 s file keeps it busy, so the burst can be over by the
        # time the press returns. The log keeps the grant the console saw.
        await until(pilot, lambda: not app.transmitting, "the end of the file", timeout=10)
        floor_notes = [e.text for e in app.state.log if e.kind == "floor"]
        assert floor_notes[0] == "talking on patrol", floor_notes
        await alice.wait_for(control.FloorIdle, lambda e: e.channel_id == patrol)
        # Every 20 ms frame of the file reached alice and opened (loopback loses nothing).
        with WavFileInput(SAMPLES / "all_clear.wav") as wav:
            in_file = sum(1 for _ in wav.frames())
        note = next(e.text for e in app.state.log if e.text.startswith("transmit on patrol"))
        assert note.startswith(f"transmit on patrol: granted, {in_file} frames")

        # The last datagrams may trail the FloorRelease (UDP beside TCP, docs/design.md): the
        # relay forwards them for 300 ms after it, and counts any it gets later; alice takes
        # them for 1 s after her FloorIdle and refuses later ones (a loaded machine can hold
        # them that long, in a socket or behind a long render). So every frame reaches alice
        # or is counted as arriving after the burst, and only the tail can be missing -
        # unless the kernel dropped a datagram at a full socket, which it counts too.
        def ended() -> int:
            return sum(1 for e in rejected if "has ended" in e.reason)

        def kernel() -> int:
            return sum(udp_drops(port) for port in ports) - kernel_before

        def accounted() -> int:
            return len(heard) + drops["not_floor_holder"] - late + ended() + kernel()

        def tally() -> str:
            relay_late = drops["not_floor_holder"] - late
            return (
                f"{in_file} sent, {len(heard)} heard, {relay_late} late at the relay,"
                f" {ended()} late at alice, {kernel()} dropped by the kernel,"
                f" relay drops {dict(drops)}, refused at alice {[e.reason for e in rejected]}"
            )

        try:
            await until(pilot, lambda: accounted() >= in_file, "every frame accounted for")
        except AssertionError:
            raise AssertionError(tally()) from None
        # Nothing counted twice (a kernel drop may also have been a keepalive, not a frame).
        assert accounted() - kernel() <= in_file, tally()
        assert {f.talker for f in heard} == {"disp"}
        sequences = [f.sequence for f in heard]
        assert sequences == sorted(set(sequences)), sequences  # in order, each once
        gaps = sequences[-1] - sequences[0] + 1 - len(sequences)
        assert gaps <= kernel(), (gaps, tally())  # a prefix, but for the kernel's drops
        assert verified and verified[-1].talker == "disp"
        assert app.state.my_floor() == ("patrol", "idle")
        assert any("transmit on patrol: granted" in e.text for e in app.state.log)


async def test_dispatcher_pre_empts_an_officer_and_can_stop_early(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    # Longer than the Pilot's presses can take while the console sends (see above), so the
    # second Space lands while the console is still on air.
    app = console(field, tmp_path, talk_file=long_recording(tmp_path / "long.wav", 12.0))
    async with app.run_test(size=(80, 24)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        talk = asyncio.create_task(
            Transmitter(alice).talk(
                WavFileInput(SAMPLES / "traffic_stop.wav"), channel_id=patrol, duration=3.0
            )
        )
        await until(pilot, lambda: app.state.channels[patrol].talker == "alice", "alice talking")
        await select_channel(pilot, app, patrol)
        await pilot.press("space")
        result = await talk
        assert result.outcome == "revoked"  # pre-empted by the dispatcher's priority
        await until(pilot, lambda: app.state.my_floor() == ("patrol", "granted"), "granted")
        await pilot.press("space")  # stop before the end of the file
        await until(pilot, lambda: not app.transmitting, "the transmit to stop")
        assert app.state.my_floor() == ("patrol", "idle")
        note = next(e.text for e in app.state.log if e.text.startswith("transmit on patrol"))
        sent = int(note.split(", ")[1].split()[0])
        assert sent < 12.0 / 0.020 / 2, note  # stopped by the key, long before the file's end


async def test_new_channel_and_patch_from_the_keyboard(field: Field, tmp_path: Path) -> None:
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with (
        app.run_test(size=(160, 48)) as pilot,
        officers(field, "alice", "carol") as (
            alice,
            carol,
        ),
    ):
        await monitoring(pilot, app, patrol, field.channels["traffic"])
        await alice.affiliate(patrol)
        await pilot.press("n")
        await pilot.press(*"incident-9", "enter", *"alice carol", "enter")
        await until(
            pilot,
            lambda: any(
                r.name == "incident-9" and r.affiliated for r in app.state.channels.values()
            ),
            "the new channel",
        )
        incident = next(c for c, r in app.state.channels.items() if r.name == "incident-9")
        await carol.wait_for(events.KeysUpdated, lambda e: e.channel_id == incident)
        assert set(app.state.channels[incident].members) == {"disp", "alice", "carol"}
        # Patch patrol with traffic: nobody leaves their channel, both hear "patrol+traffic".
        traffic = field.channels["traffic"]
        await carol.affiliate(traffic)
        await select_channel(pilot, app, patrol)
        await pilot.press("p", *"traffic", "enter")
        patched = await carol.wait_for(control.Patch)
        assert patched.linked == (patrol, traffic)
        await carol.wait_for(control.Affiliated, lambda e: e.channel_id == patched.channel_id)
        assert carol.selected == traffic
        assert app.state.channel_name(patched.channel_id) == "patrol+traffic"
        await until(
            pilot, lambda: app.state.channels[patched.channel_id].affiliated, "monitoring it"
        )
        assert app.state.patch_of(patrol) == patched.channel_id
        # `u` on a linked channel ends its patch, and the patch's channel goes.
        await pilot.press("u")
        await carol.wait_for(control.ChannelDeleted, lambda e: e.channel_id == patched.channel_id)
        await until(pilot, lambda: patched.channel_id not in app.state.channels, "the row gone")
        assert any(
            e.text == "patch patrol+traffic ended: patrol and traffic on their own"
            for e in app.state.log
        ), [e.text for e in app.state.log]
        assert carol.selected == traffic
        assert isinstance(app.screen, MainScreen)
        assert not app.state.last_error, app.state.last_error
        # `D` deletes the selected channel once its name is typed.
        await select_channel(pilot, app, incident)
        await pilot.press("D", *"incident-8", "enter")
        await until(pilot, lambda: "did not match" in app.state.last_error, "the refusal")
        assert incident in app.state.channels
        await pilot.press("D", *"incident-9", "enter")
        await carol.wait_for(control.ChannelDeleted, lambda e: e.channel_id == incident)
        await until(pilot, lambda: incident not in app.state.channels, "the row gone")


async def test_a_pre_empted_dispatcher_who_presses_space_to_stop_stays_off_the_air(
    field: Field, tmp_path: Path
) -> None:
    """Issue 10: the dispatcher talks, an officer raises an emergency and takes the floor.
    The dispatcher presses Space to stop: that only lets go of the key. No new Floor Request
    goes out, so the server never puts the dispatcher back on air after the emergency, and
    its burst log holds one dispatcher burst."""
    patrol = field.channels["patrol"]
    recording = long_recording(tmp_path / "long.wav", 12.0)
    app = console(field, tmp_path, talk_file=recording)
    async with (
        app.run_test(size=(80, 24)) as pilot,
        officers(field, "alice") as (alice,),
        watching() as logs,
    ):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        grants: list[control.FloorGranted] = []
        app.client.add_listener(
            lambda e: grants.append(e) if isinstance(e, control.FloorGranted) else None
        )
        await select_channel(pilot, app, patrol)
        await pilot.press("space")
        await alice.wait_for(control.FloorTaken, lambda e: e.user_id == "disp")
        await until(pilot, lambda: app.state.my_floor() == ("patrol", "granted"), "granted")

        await alice.raise_emergency()
        emergency = Transmitter(alice)
        talk = asyncio.create_task(
            emergency.talk(
                WavFileInput(recording), channel_id=patrol, priority=control.PRIORITY_MAX
            )
        )
        await alice.wait_for(control.FloorGranted, lambda e: e.channel_id == patrol)
        await until(
            pilot,
            lambda: not app.transmitting and app.state.my_floor()[1].startswith("revoked"),
            "the console to stop on the revoke",
        )

        await pilot.press("space")  # the dispatcher's "stop"
        await until(
            pilot,
            lambda: (
                app.state.my_floor()[1].startswith("queued")
                or all(w.is_finished for w in app.workers if w.group == "network")
            ),
            "the console to handle the key",
        )
        await app.client.ping_server()  # the server has handled all the console sent
        floor = field.server.channels[patrol].floor
        assert floor.holder == "alice"
        assert "disp" not in [user for user, _ in floor.queue], "Space asked for the floor again"

        emergency.stop()
        assert (await talk).outcome == "granted"
        await alice.wait_for(control.FloorIdle, lambda e: e.channel_id == patrol)
        await app.client.ping_server()
        assert len(grants) == 1, "the server put the dispatcher back on air"
        assert field.server.channels[patrol].floor.holder is None

        # The burst's log entry is written on the store's thread once the burst ends; the server
        # logs "talk burst" after that write: wait for alice's line, then read the log once.
        await logs.until(lambda: logs.has("talk burst", talker="alice"), "alice's burst logged")
        bursts = await channel_admin.recall(alice, patrol, 10)
        assert any(b.talker == "alice" and b.duration > 0 for b in bursts), bursts
        assert [b.talker for b in bursts] == ["alice", "disp"]


async def test_opening_a_conversation_tells_the_sender_it_was_read(
    field: Field, tmp_path: Path
) -> None:
    """A direct text waits unread until the dispatcher opens alice's conversation; then alice
    gets a read receipt from the console (delivered before, read only once seen)."""
    patrol = field.channels["patrol"]
    app = console(field, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        receipts: list[control.TextReceipt] = []
        alice.add_listener(
            lambda e: receipts.append(e) if isinstance(e, control.TextReceipt) else None
        )
        message_id = await alice.send_text("need a tow truck", to_user="disp")
        direct_chat = Conversation.user("alice")
        await until(pilot, lambda: app.state.unread.get(direct_chat) == 1, "the unread text")
        await until(
            pilot,
            lambda: any(r.kind == control.RECEIPT_DELIVERED for r in receipts),
            "the delivery receipt",
        )
        await pilot.pause()
        await alice.ping_server()
        assert not [r for r in receipts if r.kind == control.RECEIPT_READ], "read unseen"
        # The dispatcher opens alice's conversation from her presence row.
        await select_user(pilot, app, "alice")
        await until(
            pilot,
            lambda: app.screen.query_one(MessagesPane).conversation == direct_chat,
            "alice's conversation on screen",
        )
        read = await alice.wait_for(
            control.TextReceipt, lambda r: r.kind == control.RECEIPT_READ, timeout=5
        )
        assert (read.message_id, read.by_user) == (message_id, "disp")
        assert app.state.unread.get(direct_chat, 0) == 0
