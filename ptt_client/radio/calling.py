"""The radio's private calls: what a call speaks from and plays to, and the officer's call
actions (dial, answer, refuse, hang up, half-duplex talk), for keys and scripts alike.

:class:`RadioCalls` sits on the client's :class:`~ptt_client.calls.manager.PrivateCalls`: it
gives each call its audio (``--call-input``, ``--call-output``), closes it when the call ends
(a WAV recording is complete then, and said so), and turns call events into notes
(:mod:`~ptt_client.radio.call_notes`).
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from ptt_client import events
from ptt_client.audio import (
    AudioError,
    AudioInput,
    AudioOutput,
    WavDirectoryOutput,
    WavFileInput,
)
from ptt_client.audio_devices import DeviceInput, DeviceOutput
from ptt_client.calls.manager import Call, CallError
from ptt_client.client import RadioClient
from ptt_client.codec import Pcm, frame_samples
from ptt_client.radio import call_notes, own_notes
from ptt_client.radio.call_notes import CallNotes
from ptt_client.radio.notes import Note
from ptt_client.recordings import burst_file_name
from ptt_client.script import CallStep
from ptt_protocol import control

__all__ = ["CALL_ACTIONS", "PressToTalkInput", "RadioCalls", "call_output_for"]

CALL_FRAME_MS: Final = 20
"""Calls always carry 20 ms Opus frames, whatever ``--frame-ms`` says for group talk."""

CALL_ACTIONS: Final = ("answer", "refuse", "hangup")


def call_output_for(group_output: str) -> str:
    """``--call-output``'s default from ``--output``: the speaker stays the speaker, a
    directory gets one WAV per call, a FILE.wav's directory gets them beside it."""
    if group_output == "speaker" or not group_output.lower().endswith(".wav"):
        return group_output
    return str(Path(group_output).parent)


class PressToTalkInput(AudioInput):
    """A WAV file for a half-duplex call: silence until this radio has the call's floor, then
    the file from its start at each grant (as a WAV plays from its start at each group PTT)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.frame_samples = frame_samples(CALL_FRAME_MS)
        self._silence: Pcm = np.zeros(self.frame_samples, dtype=np.int16)
        self._source: WavFileInput | None = None

    def press(self) -> None:
        """The floor is this radio's: the file plays from its start."""
        self.release()
        self._source = WavFileInput(self.path, CALL_FRAME_MS)

    def release(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def read_frame(self) -> Pcm | None:
        # Never None: that would end the call's source for good (silence from then on).
        frame = self._source.read_frame() if self._source is not None else None
        return self._silence if frame is None else frame

    def close(self) -> None:
        self.release()


class _CallAudio:
    """One call's source and sink, as opened for it."""

    def __init__(self, peer: str, source: AudioInput | None, sink: AudioOutput | None) -> None:
        self.peer = peer
        self.source = source
        self.sink = sink

    def close(self) -> Note | None:
        """Close both; the note for a finished recording, if the sink was a WAV file."""
        if self.source is not None:
            self.source.close()
        if isinstance(self.sink, WavDirectoryOutput):
            path = self.sink.end_burst()
            if path is None:
                return None
            with wave.open(str(path), "rb") as written:
                seconds = written.getnframes() / written.getframerate()
            return call_notes.recorded(self.peer, path, seconds)
        if self.sink is not None:
            self.sink.close()
        return None


class RadioCalls:
    """The calls of ``client``'s radio; ``tell`` writes a note for the officer."""

    def __init__(
        self,
        client: RadioClient,
        *,
        tell: Callable[[Note], None],
        call_input: str | None = None,
        call_output: str | None = None,
        auto_answer: bool = True,
        relay_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.calls = client.calls
        self.calls.audio = self._audio_for
        self.calls.auto_answer = auto_answer
        self.calls.relay_only = relay_only
        self.call_input = call_input
        """``mic``, a WAV file, or ``None`` (the call hears silence from this radio)."""
        self.call_output = call_output
        """``speaker``, a FILE.wav, a directory (a WAV per call), or ``None`` (not played)."""
        self._tell = tell
        self._clock = clock
        self._notes = CallNotes(client.user_id)
        self._audio: dict[bytes, _CallAudio] = {}
        self._changed = asyncio.Event()

    # --- audio -------------------------------------------------------------------------------

    def _audio_for(self, call: Call) -> tuple[AudioInput | None, AudioOutput | None]:
        self.close_audio()  # a call that ended (pre-empted) just before this one began
        source: AudioInput | None = None
        sink: AudioOutput | None = None
        try:
            source = self._open_input(call)
        except (AudioError, OSError) as exc:
            self._tell(own_notes.error("call audio: cannot open the input, sending silence", exc))
        try:
            sink = self._open_output(call)
        except (AudioError, OSError) as exc:
            self._tell(own_notes.error("call audio: cannot open the output, not played", exc))
        self._audio[call.call_id] = _CallAudio(call.peer, source, sink)
        return source, sink

    def _open_input(self, call: Call) -> AudioInput | None:
        spec = self.call_input
        if spec is None:
            return None
        if spec == "mic":
            return DeviceInput(None, CALL_FRAME_MS)
        if call.mode == control.CALL_HALF_DUPLEX:
            return PressToTalkInput(spec)
        return WavFileInput(spec, CALL_FRAME_MS)

    def _open_output(self, call: Call) -> AudioOutput | None:
        spec = self.call_output
        if spec is None:
            return None
        if spec == "speaker":
            return DeviceOutput(None, CALL_FRAME_MS)
        path = Path(spec)
        if spec.lower().endswith(".wav"):
            directory, name = path.parent, path.name  # a second call gets FILE-2.wav
        else:
            directory, name = path, burst_file_name(self._clock(), "call", call.peer)
        output = WavDirectoryOutput(directory)
        output.start_burst(name)
        return output

    def close_audio(self) -> None:
        """Close the audio of calls that are over (all of it once the radio stops)."""
        active = self.calls.active
        for call_id in [c for c in self._audio if active is None or c != active.call_id]:
            told = self._audio.pop(call_id).close()
            if told is not None:
                self._tell(told)

    # --- events ------------------------------------------------------------------------------

    def on_event(self, event: object) -> list[Note]:
        """Take note of a client event: the notes to print (often none)."""
        if isinstance(event, events.CallEnded):
            self.close_audio()  # before the note: a recording is complete once it is told
        elif isinstance(event, control.CallTalker):
            audio = self._audio.get(event.call_id)
            if audio is not None and isinstance(audio.source, PressToTalkInput):
                if event.user_id == self.client.user_id:
                    audio.source.press()
                else:
                    audio.source.release()
        found = self._notes.notes(event, self.calls.active)
        if found:
            self._changed.set()
        return found

    def status(self) -> str:
        """The status line's call part (empty without a call)."""
        return call_notes.call_status(self.calls.active, self.client.user_id, self._clock())

    @property
    def half_duplex(self) -> bool:
        """In a connected half-duplex call: the PTT key takes the call's floor."""
        call = self.calls.active
        return (
            call is not None and call.mode == control.CALL_HALF_DUPLEX and call.state == "connected"
        )

    # --- actions -----------------------------------------------------------------------------

    async def dial(
        self, user: str, *, half: bool = False, emergency: bool = False, ring: bool = False
    ) -> Call:
        """Place a call; returns once the offer is out (the notes say what follows)."""
        call = await self.calls.dial(
            user,
            mode=control.CALL_HALF_DUPLEX if half else control.CALL_FULL_DUPLEX,
            emergency=emergency,
            commencement=control.COMMENCEMENT_MANUAL if ring else control.COMMENCEMENT_AUTOMATIC,
        )
        if call.end is None:
            self._tell(call_notes.dialing(call))
        return call

    async def call(self, step: CallStep) -> None:
        """The script's ``call``: dial, and hang up ``step.duration`` s after it connects."""
        call = await self.dial(step.user, half=step.half, emergency=step.emergency, ring=step.ring)
        duration = step.duration
        if duration is None:
            return
        await self._until(lambda: call.state in ("connected", "ended"))
        if call.state == "ended":
            return
        ended = asyncio.create_task(call.ended.wait())
        try:
            await asyncio.wait({ended}, timeout=duration)  # the call's planned length
        finally:
            ended.cancel()
        if self.calls.active is call:
            await self.calls.hangup()

    async def action(self, action: str, *, wait: bool = False) -> None:
        """``answer``, ``refuse`` or ``hangup``; ``wait``: for a call to ring, if none does."""
        if action == "hangup":
            call = self.calls.active
            if call is not None and call.state == "ringing" and not call.outgoing:
                await self.calls.refuse()  # hanging up on a ringing call refuses it
            else:
                await self.calls.hangup()
            return
        if wait:
            await self._until(self._ringing)
        elif not self._ringing():
            raise CallError("no call is ringing")
        await (self.calls.accept() if action == "answer" else self.calls.refuse())

    def _ringing(self) -> bool:
        call = self.calls.active
        return call is not None and not call.outgoing and call.state == "ringing"

    async def toggle_talk(self) -> None:
        """The PTT key in a half-duplex call: ask for the call's floor, or give it back."""
        call = self.calls.active
        assert call is not None
        await self.calls.talk(call.talker != self.client.user_id)

    async def talk_for(self, duration: float) -> None:
        """The script's ``talk`` in a half-duplex call: hold the call's floor ``duration`` s."""
        call = self.calls.active
        await self.calls.talk(True)
        try:
            if call is not None:
                ended = asyncio.create_task(call.ended.wait())
                try:
                    await asyncio.wait({ended}, timeout=duration)
                finally:
                    ended.cancel()
        finally:
            if self.calls.active is call and call is not None:
                await self.calls.talk(False)

    async def _until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._changed.clear()
            await self._changed.wait()
