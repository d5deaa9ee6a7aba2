"""The console's private calls: placing, answering, refusing and hanging up (in workers, as
every network action of the app), the call's audio, and the call log screen's data.

Audio follows the console's: the call speaks from ``--talk-file`` (or the bundled sample when
there is no microphone) or the microphone, and plays to the speaker; with a listen directory
(no sound card, or ``--listen-dir``) each call is also written there as one WAV file,
``DATE-TIME_call_PEER.wav``, said in the event log when the call ends.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Final

from ptt_client import events
from ptt_client.audio import AudioError, AudioInput, AudioOutput, WavDirectoryOutput
from ptt_client.codec import Pcm
from ptt_client.recordings import burst_file_name
from ptt_protocol import control
from tui.screens.call_log import CallLogScreen
from tui.state import CallPlaced, Note

if TYPE_CHECKING:
    from ptt_client.calls.manager import Call
    from tui.app import DispatchApp

CALL_FRAME_MS: Final = 20
CALL_LOG_ROWS: Final = 50


class _Both(AudioOutput):
    """The speaker and the call's WAV file at once (written at the speaker's pace)."""

    blocking: ClassVar[bool] = True

    def __init__(self, speaker: AudioOutput, recording: AudioOutput) -> None:
        self.speaker = speaker
        self.recording = recording

    def write(self, pcm: Pcm) -> None:
        self.recording.write(pcm)
        self.speaker.write(pcm)

    def close(self) -> None:
        self.speaker.close()
        self.recording.close()


class ConsoleCalls:
    """The private calls of ``app``'s client; ``speaker`` opens the sound card for a call
    (``None``: no speaker)."""

    def __init__(
        self,
        app: DispatchApp,
        *,
        speaker: Callable[[], AudioOutput] | None = None,
        auto_answer: bool = False,
    ) -> None:
        self.app = app
        self.calls = app.client.calls
        self.calls.audio = self._audio_for
        self.calls.auto_answer = auto_answer
        """A dispatcher answers by hand (y) unless ``--answer auto``; an emergency call is
        answered at once all the same."""
        self.speaker = speaker
        self._open: tuple[bytes, str, AudioInput | None, AudioOutput | None] | None = None
        self._recording: WavDirectoryOutput | None = None

    # --- actions (the main screen's keys) ----------------------------------------------------

    def dial(self, user: str, *, emergency: bool = False) -> None:
        """c (C: an emergency call): call ``user``, full duplex."""
        if self.calls.active is not None and not emergency:
            self.app.notify(
                f"already in a call with {self.calls.active.peer}: h hangs up",
                severity="warning",
            )
            return
        self.app._spawn(self._dial(user, emergency), f"calling {user}")

    async def _dial(self, user: str, emergency: bool) -> None:
        call = await self.calls.dial(user, emergency=emergency)
        if call.end is None:  # a call that failed at once says why in its CallEnded
            self.app.apply(CallPlaced(call.call_id, user, emergency))

    def answer(self) -> None:
        """y: answer the call ringing here."""
        if not self._ringing():
            self.app.notify("no call is ringing", severity="warning")
            return
        self.app._spawn(self.calls.accept(), "answering the call")

    def hang_up(self) -> None:
        """h: refuse the call ringing here, or end the call."""
        if self._ringing():
            self.app._spawn(self.calls.refuse(), "refusing the call")
        elif self.calls.active is not None:
            self.app._spawn(self.calls.hangup(), "hanging up")
        else:
            self.app.notify("not in a call", severity="warning")

    @property
    def half_duplex(self) -> bool:
        """A connected half-duplex call: Space asks for its floor or gives it back."""
        call = self.calls.active
        return (
            call is not None and call.mode == control.CALL_HALF_DUPLEX and call.state == "connected"
        )

    def toggle_talk(self) -> None:
        call = self.calls.active
        if call is not None:
            talking = call.talker != self.app.client.user_id
            self.app._spawn(self.calls.talk(talking), "the call's floor")

    def _ringing(self) -> bool:
        call = self.calls.active
        return call is not None and not call.outgoing and call.state == "ringing"

    def show_log(self) -> None:
        """L: the call log screen, filled when the relay answers."""
        self.app.push_screen(CallLogScreen())
        self.app._spawn(
            self.app.client.send_message(control.CallLogRequest(limit=CALL_LOG_ROWS)),
            "asking for the call log",
        )

    # --- events ------------------------------------------------------------------------------

    def on_event(self, event: object) -> None:
        """A client event, after the model took it: the call's audio and the log screen."""
        if isinstance(event, events.CallEnded):
            self.close_audio()
        elif isinstance(event, control.CallLog):
            screen = self.app.screen
            if isinstance(screen, CallLogScreen):
                screen.show(event.calls)

    # --- audio -------------------------------------------------------------------------------

    def _audio_for(self, call: Call) -> tuple[AudioInput | None, AudioOutput | None]:
        self.close_audio()  # a call pre-empted just before this one
        source: AudioInput | None = None
        try:
            source = self._input()
        except (AudioError, OSError) as exc:
            self.app.apply(Note("error", f"call audio: no input ({exc}), sending silence"))
        sink: AudioOutput | None = None
        try:
            sink = self._output(call.peer)
        except (AudioError, OSError) as exc:
            self.app.apply(Note("error", f"call audio: no output ({exc}), not played"))
        self._open = (call.call_id, call.peer, source, sink)
        return source, sink

    def _input(self) -> AudioInput:
        if self.app.talk_file is not None:
            from ptt_client.audio import WavFileInput

            return WavFileInput(self.app.talk_file, CALL_FRAME_MS)
        from ptt_client.audio_devices import DeviceInput

        return DeviceInput(None, CALL_FRAME_MS)

    def _output(self, peer: str) -> AudioOutput | None:
        speaker = self.speaker() if self.speaker is not None else None
        recording = None
        if self.app.listen_dir is not None:
            recording = WavDirectoryOutput(self.app.listen_dir)
            recording.start_burst(burst_file_name(time.time(), "call", peer))
            self._recording = recording
        if speaker is not None and recording is not None:
            return _Both(speaker, recording)
        return speaker or recording

    def close_audio(self) -> None:
        """Close the audio of the call that ended (and say where its recording is)."""
        opened, self._open = self._open, None
        if opened is None:
            return
        _, peer, source, sink = opened
        if source is not None:
            source.close()
        recording, self._recording = self._recording, None
        path = recording.end_burst() if recording is not None else None
        if sink is not None:
            sink.close()
        if path is not None:
            self.app.apply(Note("audio", f"call with {peer}, {_seconds(path):.1f} s: {path}"))


def _seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as written:
        return written.getnframes() / written.getframerate()
