"""The console's audio without a sound card, against a real server: Space talks the speech
sample and an officer hears it; what the console hears and recalls is written as WAV files that
sound like what was said (real Opus, real E2E keys, the real app under the Pilot)."""

from __future__ import annotations

import re
from pathlib import Path

from ptt_client import events
from ptt_client.audio import WavFileInput, WavFileOutput, load_wav
from ptt_client.voice import Played, Player, Transmitter
from ptt_protocol import control
from tests.ptt_client.speech import similarity
from tests.tui.org import Field, recorded
from tests.tui.test_app_live import SAMPLES, console, monitoring, officers, select_channel, until
from tui.app import DispatchApp
from tui.listening import console_audio

TALK, OTHER = SAMPLES / "backup_request.wav", SAMPLES / "medical.wav"


def frames_in(path: Path) -> int:
    with WavFileInput(path) as wav:
        return sum(1 for _ in wav.frames())


def sounds_like(path: Path, said: Path, other: Path, at_least: float = 0.6) -> None:
    """``path`` holds the speech of ``said``, not of ``other`` (tests/ptt_client/speech.py).
    Opus scores ~0.82 against its source with nothing lost; a loaded machine may conceal a few
    late frames live, hence the margin."""
    received = load_wav(path)
    same, different = similarity(load_wav(said), received), similarity(load_wav(other), received)
    assert same > at_least, (path, same)
    assert same > different + 0.3, (path, same, different)


def headless_console(field: Field, tmp_path: Path) -> DispatchApp:
    """The console as ``ptt-dispatch`` starts it on a machine with no sound card and no flag."""
    audio = console_audio(
        None, None, False, devices=(False, False), default_dir=tmp_path / "state" / "heard"
    )
    assert audio.output is None
    return console(
        field,
        tmp_path,
        talk_file=audio.talk_file,
        listen_dir=audio.listen_dir,
        save_dir=audio.save_dir,
        notes=audio.notes,
    )


async def test_a_console_without_a_sound_card_talks_the_sample_and_an_officer_hears_it(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    app = headless_console(field, tmp_path)
    sample = app.talk_file
    assert sample is not None and sample.name == "all_clear.wav"
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        # One calm line says what the console does instead, and where; nothing is an error.
        heard_dir = tmp_path / "state" / "heard"
        assert [(e.kind, e.text) for e in app.state.log if e.kind in ("audio", "error")] == [
            (
                "audio",
                f"no sound card: talking from sample {sample}, writing what you hear to {heard_dir}",
            )
        ]
        assert not app.state.last_error
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        expected = frames_in(sample)
        played: list[Played] = []
        ended: list[events.VoiceRejected] = []
        alice.add_listener(
            lambda e: (
                ended.append(e)
                if isinstance(e, events.VoiceRejected) and "has ended" in e.reason
                else None
            )
        )
        drops = field.server.metrics.relay.drops
        late_before = drops["not_floor_holder"]

        def accounted() -> int:
            # A loaded machine can hold the burst's last datagrams past the relay's trailing
            # grace or alice's 1 s after FloorIdle: they are counted there, not played.
            return len(played) + drops["not_floor_holder"] - late_before + len(ended)

        speaker = WavFileOutput(tmp_path / "alice.wav")
        ear = Player(alice, speaker, tones=False, on_played=played.append)
        ear.start()
        try:
            await select_channel(pilot, app, patrol)
            await pilot.press("space")
            # The player may cut the burst's last frame or two when the FloorIdle overtakes
            # them on a loaded machine (it ends the burst then); anything more is a failure.
            enough = expected - max(2, expected // 50)
            await alice.wait_for(control.FloorIdle, lambda e: e.channel_id == patrol)
            try:
                await until(pilot, lambda: accounted() >= enough, "every frame")
            except AssertionError:
                kinds = sorted({p.kind for p in played})
                raise AssertionError(
                    f"{expected} sent, {len(played)} played ({kinds}), {len(ended)} late at"
                    f" alice, relay drops {dict(drops)}, transmitting {app.transmitting},"
                    f" log {[e.text for e in app.state.log][-8:]}"
                ) from None
        finally:
            await ear.stop()
            speaker.close()
        assert {p.talker for p in played} == {"disp"}
        sounds_like(tmp_path / "alice.wav", sample, OTHER)
        await until(pilot, lambda: not app.transmitting, "the end of the sample")
        assert not [e.text for e in app.state.log if e.kind == "error"], [
            e.text for e in app.state.log
        ]


async def test_what_a_headless_console_hears_and_recalls_is_written_as_wav(
    field: Field, tmp_path: Path
) -> None:
    patrol = field.channels["patrol"]
    app = headless_console(field, tmp_path)
    heard_dir = tmp_path / "state" / "heard"
    async with app.run_test(size=(160, 48)) as pilot, officers(field, "alice") as (alice,):
        await monitoring(pilot, app, patrol)
        await alice.affiliate(patrol)
        await alice.wait_for(events.KeysUpdated, lambda e: e.channel_id == patrol)
        result = await Transmitter(alice).talk(WavFileInput(TALK), channel_id=patrol)
        assert result.outcome == "granted" and result.frames_sent == frames_in(TALK)

        # Live: one file for the burst, named by time, channel and talker, and one log line.
        def heard_notes() -> list[str]:
            return [e.text for e in app.state.log if e.text.startswith("heard ")]

        await until(pilot, heard_notes, "the heard burst's log line")
        (heard,) = sorted(heard_dir.glob("*.wav"))
        assert re.fullmatch(r"\d{8}-\d{6}_patrol_alice\.wav", heard.name), heard.name
        (note,) = heard_notes()
        assert note.startswith("heard Alice Adams on patrol, ") and note.endswith(f": {heard}")
        sounds_like(heard, TALK, OTHER)

        # Recall, save as WAV (w): the stored, sealed frames opened with the console's keys.
        await recorded(alice, patrol, "alice", result.frames_sent)
        await select_channel(pilot, app, patrol)
        await pilot.press("w")
        await until(pilot, lambda: app.last_saved is not None, "the saved recall")
        saved = app.last_saved
        log = [e.text for e in app.state.log]
        assert saved is not None and saved.parent == heard_dir, log
        assert re.fullmatch(r"\d{8}-\d{6}_patrol_alice_recall\.wav", saved.name), saved.name
        assert any(e.text.endswith(f"saved to {saved}") for e in app.state.log), log
        # A recording is the burst as stored: every frame, so the match is close.
        assert len(load_wav(saved)) == result.frames_sent * 960, log
        sounds_like(saved, TALK, OTHER, at_least=0.75)

        # Without a speaker, r (play the recall) saves it too, beside the first copy.
        await pilot.press("r")
        await until(pilot, lambda: app.last_saved != saved, "the second saved recall")
        assert app.last_saved is not None and app.last_saved.name == (
            saved.name.removesuffix(".wav") + "-2.wav"
        )
        assert not [e.text for e in app.state.log if e.kind == "error"], [
            e.text for e in app.state.log
        ]
