"""The radio's audio pipelines around a :class:`RadioClient`: talk (capture -> Opus -> send)
and listen (receive -> jitter buffer -> Opus/FEC/PLC -> speaker), with the radio tones.

Voice always plays first: tones wait in a bounded :class:`ToneQueue` and play only while nobody
is heard, so no flood of events can hold back a call (issue 9).

Both run in real time on the event loop with absolute schedules (frame n is due
at start + n * frame), so timing errors do not accumulate. Opus work is a few
hundred microseconds per frame; on a slow device it could move to a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ptt_client import events
from ptt_client.audio import AudioInput, AudioOutput, WavDirectoryOutput
from ptt_client.broadcasts import BroadcastOutcome
from ptt_client.client import RadioClient
from ptt_client.codec import (
    DEFAULT_BITRATE,
    MIN_LOSS_HINT_PCT,
    SAMPLE_RATE,
    OpusDecoder,
    OpusEncoder,
    Pcm,
    frame_samples,
)
from ptt_client.jitter import Conceal, Play, Recover
from ptt_client.mixer import StreamMixer
from ptt_client.recordings import burst_file_name
from ptt_client.tones import Tone, ToneQueue
from ptt_protocol import control

FLOOR_ANSWER_TIMEOUT = 2.0
_ENDED_BURSTS_KEPT = 64


@dataclass
class TalkResult:
    """How a press-to-talk went."""

    outcome: str
    """granted, denied, queued-timeout, no-answer, stopped, revoked.

    After ``denied`` and ``revoked`` the PTT key is still down (``client.ptt_down``): the
    floor went, the officer's hand did not. Letting go (``client.release``) sends nothing.
    A broadcast lets go of its keys itself: it is over when :meth:`Transmitter.broadcast`
    returns."""
    broadcast: BroadcastOutcome | None = None
    """For a broadcast: which channels granted it and which refused it (and why)."""
    frames_sent: int = 0
    access_time_s: float | None = None
    cause: str = ""
    capture_times: list[float] = field(default_factory=list)
    """Monotonic time each sent frame was captured (for mouth-to-ear measurements)."""
    sequences: list[int] = field(default_factory=list)
    """Media sequence number of each sent frame, parallel to :attr:`capture_times`."""


class Transmitter:
    """Sends audio from ``source`` while this radio holds the floor."""

    def __init__(
        self,
        client: RadioClient,
        frame_ms: int = 20,
        bitrate: int = DEFAULT_BITRATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.frame_ms = frame_ms
        self.encoder = OpusEncoder(frame_ms=frame_ms, bitrate=bitrate)
        self._clock = clock
        self._answers: asyncio.Queue[control.Message] = asyncio.Queue()
        self._stop = asyncio.Event()
        self._stopped_waiting = False
        self._channel: int | None = None
        """The channel being talked on (None between talks: answers are ignored)."""
        client.add_listener(self._on_event)

    def _on_event(self, event: object) -> None:
        if (
            isinstance(
                event,
                control.FloorGranted
                | control.FloorDeny
                | control.FloorRevoke
                | control.FloorQueuePosition,
            )
            and event.channel_id == self._channel
        ):
            self._answers.put_nowait(event)

    def stop(self) -> None:
        """Release PTT (from another task: a key press, a timer)."""
        self._stop.set()

    async def talk(
        self,
        source: AudioInput,
        *,
        channel_id: int | None = None,
        duration: float | None = None,
        priority: int | None = None,
        queue_timeout: float = 10.0,
    ) -> TalkResult:
        """Press PTT, wait for the floor, send ``source`` in real time, then release.

        :meth:`stop` (PTT up) ends it at any point, also while waiting for the floor; a stop
        before the talk begins is forgotten (a radio's PTT-up with no call in progress).
        When the floor is denied or taken away the key stays down (see :class:`TalkResult`);
        a later talk lets go of it first.
        """
        self._stop.clear()
        while not self._answers.empty():
            self._answers.get_nowait()
        # Only this channel's floor answers count (another affiliated channel has its own).
        self._channel = channel_id if channel_id is not None else self.client.selected
        if self._channel is not None and self.client.ptt_down(self._channel):
            # The key was left down by a deny or a revoke: letting go sends nothing, and
            # this press then asks for the floor afresh.
            await self.client.release(self._channel)
        pressed = self._clock()
        await self.client.press(channel_id, priority)
        queued = False
        while True:
            wait = queue_timeout if queued else FLOOR_ANSWER_TIMEOUT
            answer = await self._next_answer(wait)
            if answer is None:
                self._stop.clear()
                await self.client.release(channel_id)
                outcome = (
                    "stopped"
                    if self._stopped_waiting
                    else ("queued-timeout" if queued else "no-answer")
                )
                return TalkResult(outcome)
            if isinstance(answer, control.FloorGranted):
                break
            if isinstance(answer, control.FloorDeny):
                return TalkResult("denied", cause=answer.cause)
            if isinstance(answer, control.FloorQueuePosition):
                queued = True
        result = TalkResult("granted", access_time_s=self._clock() - pressed)
        await self._send(source, result, duration, channel_id, answers=True)
        # Revoked (pre-empted, too long, the link dropped): the radio already stopped and
        # released (TS 24.380 6.2.4.5.4); the key is the officer's to let go, unless the
        # officer let go of it meanwhile.
        let_go = result.outcome != "revoked" or self._stop.is_set()
        self._stop.clear()
        if let_go:
            await self.client.release(channel_id)
        return result

    async def broadcast(
        self, source: AudioInput, channel_ids: Sequence[int], *, duration: float | None = None
    ) -> TalkResult:
        """A broadcast group call (TS 22.179 6.2.3): talk to every channel of ``channel_ids``
        at once, one way, until :meth:`stop`, the end of ``source`` or ``duration``, or until
        every channel's floor was taken away (an emergency pre-empts a broadcast on its
        channel; the others still hear it). The keys are let go at the end.

        Raises :class:`~ptt_client.errors.BroadcastRefused` when the server refuses the call.
        """
        self._stop.clear()
        self._channel = None  # a broadcast's answers are the client's to gather
        pressed = self._clock()
        outcome = await self.client.broadcast(channel_ids)
        try:
            if not outcome.granted:
                causes = sorted(set(outcome.denied.values()))
                return TalkResult("denied", broadcast=outcome, cause=", ".join(causes))
            result = TalkResult("granted", broadcast=outcome, access_time_s=self._clock() - pressed)
            await self._send(source, result, duration, None, answers=False)
            return result
        finally:
            self._stop.clear()
            await self.client.end_broadcast()

    async def _send(
        self,
        source: AudioInput,
        result: TalkResult,
        duration: float | None,
        channel_id: int | None,
        *,
        answers: bool,
    ) -> None:
        """Send ``source`` in real time while the floor is held (``answers``: a FloorRevoke
        among the floor answers ends it too)."""
        self.encoder.set_expected_loss(max(MIN_LOSS_HINT_PCT, self.client.loss.loss_pct))
        start = self._clock()
        frame_s = self.frame_ms / 1000
        n = 0
        while not self._stop.is_set():
            if duration is not None and n * frame_s >= duration:
                break
            # A microphone read waits for the hardware: never on the event loop.
            pcm = (
                await asyncio.to_thread(source.read_frame)
                if source.blocking
                else source.read_frame()
            )
            if pcm is None:
                break
            if (
                answers
                and not self._answers.empty()
                and isinstance(self._answers.get_nowait(), control.FloorRevoke)
            ):
                result.outcome = "revoked"
                break
            captured = self._clock()
            packet = self.encoder.encode(pcm)
            if not await self.client.send_voice(packet, channel_id):
                result.outcome = "revoked"
                break
            result.capture_times.append(captured)
            if self.client.last_voice_sequence is not None:
                result.sequences.append(self.client.last_voice_sequence)
            result.frames_sent += 1
            n += 1
            delay = start + n * frame_s - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _next_answer(self, timeout: float) -> control.Message | None:
        """The floor's next answer, or None on timeout or when PTT was released meanwhile."""
        self._stopped_waiting = False
        getter = asyncio.ensure_future(self._answers.get())
        stopper = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait(
            {getter, stopper}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for task in (getter, stopper):
            if task not in done:
                task.cancel()
        if getter in done:
            return getter.result()
        self._stopped_waiting = stopper in done
        return None


@dataclass(frozen=True)
class Played:
    """One frame written to the output: who, which frame, when (monotonic)."""

    talker: str
    channel_id: int
    sequence: int
    kind: str
    """play, repeat (played from a repeat in a later datagram), fec, plc"""
    at: float


@dataclass(frozen=True)
class SavedBurst:
    """A burst heard and written to its own file (the output is a
    :class:`~ptt_client.audio.WavDirectoryOutput`)."""

    channel_id: int
    talker: str
    path: Path
    seconds: float


class Player:
    """Plays what the radio hears: the picked talker's stream, and the radio tones.

    Into a :class:`~ptt_client.audio.WavDirectoryOutput`, each burst goes to its own file,
    named by :func:`~ptt_client.recordings.burst_file_name`; ``on_saved`` hears of each file
    once it is complete.
    """

    def __init__(
        self,
        client: RadioClient,
        output: AudioOutput,
        *,
        frame_ms: int = 20,
        tones: bool = True,
        clock: Callable[[], float] = time.monotonic,
        on_played: Callable[[Played], None] | None = None,
        on_saved: Callable[[SavedBurst], None] | None = None,
    ) -> None:
        self.client = client
        self.output = output
        self.frame_ms = frame_ms
        self.tones = tones
        self._clock = clock
        self._samples = frame_samples(frame_ms)
        self.mixer: StreamMixer[tuple[int, str, int]] = StreamMixer(frame_ms=frame_ms)
        self._decoders: dict[tuple[int, str, int], OpusDecoder] = {}
        self.tone_queue = ToneQueue(frame_ms)
        self._talker_delay_ms: dict[tuple[int, str], float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._on_played = on_played
        self._on_saved = on_saved
        self._burst_samples = 0
        self._ended_bursts: dict[tuple[int, str, int], None] = {}
        """Bursts whose floor was released or taken over (oldest first, a bounded set)."""
        self._current_burst: tuple[int, str, int] | None = None
        self.rejected = 0
        client.add_listener(self._on_event)

    def _on_event(self, event: object) -> None:
        now = self._clock()
        if isinstance(event, events.VoiceFrame):
            key = (event.channel_id, event.talker, event.burst_id)
            # Each burst gets its own buffer, started at the delay this talker's last burst
            # measured: the 60 ms default is for a talker never heard before.
            learnt = self._talker_delay_ms.get((event.channel_id, event.talker))
            self.mixer.push(
                key,
                event.sequence,
                event.opus,
                now,
                event.priority,
                learnt,
                repeat=event.repeat,
                reach=event.reach,
            )
            self._wake.set()
        elif isinstance(event, events.VoiceRejected):
            self.rejected += 1
        elif isinstance(event, control.FloorIdle | control.FloorTaken):
            for key in self.mixer.talkers():
                if key[0] == event.channel_id and (
                    isinstance(event, control.FloorIdle) or key[2] != event.burst_id
                ):
                    self._remember_delay(key)
                    self.mixer.end_burst(key)
                    self._ended_bursts[key] = None
            while len(self._ended_bursts) > _ENDED_BURSTS_KEPT:
                del self._ended_bursts[next(iter(self._ended_bursts))]
        elif self.tones:
            if isinstance(event, control.FloorGranted):
                self._queue_tone(Tone.TALK_PERMIT, now)
            elif isinstance(event, control.FloorDeny | control.FloorRevoke):
                self._queue_tone(Tone.DENY, now)
            elif isinstance(event, control.EmergencyAlert):
                self._queue_tone(Tone.EMERGENCY, now, event.alert_id, event.user_id)

    def _remember_delay(self, key: tuple[int, str, int]) -> None:
        buffer = self.mixer.buffer(key)
        if buffer is not None and buffer.stats.received:
            self._talker_delay_ms[(key[0], key[1])] = buffer.learnt_delay_ms

    def _queue_tone(
        self, kind: Tone, now: float, alert_id: bytes | None = None, raiser: str | None = None
    ) -> None:
        if self.tone_queue.add(kind, now, alert_id, raiser):
            self._wake.set()

    def roger(self) -> None:
        """The roger beep at release, as radios do."""
        if self.tones:
            self._queue_tone(Tone.ROGER, self._clock())

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._end_file_burst()

    async def run(self) -> None:
        frame_s = self.frame_ms / 1000
        while True:
            now = self._clock()
            popped = self.mixer.pop(now)
            if self.mixer.current is not None:
                # Somebody is heard (or about to be): tones give way, even one half played.
                self.tone_queue.give_way_to_voice()
            elif popped is None and (pcm := self.tone_queue.next_frame()) is not None:
                await self._write(pcm)
                await asyncio.sleep(frame_s)
                continue
            if popped is None:
                dues = [
                    d
                    for k in self.mixer.talkers()
                    if (b := self.mixer.buffer(k)) and (d := b.next_due())
                ]
                due = min(dues, default=None)
                if (
                    self._current_burst is not None
                    and self.mixer.current is None
                    and self._burst_over(self._current_burst)
                ):
                    self._end_file_burst()
                self._wake.clear()
                timeout = frame_s if due is None else max(0.0, due - self._clock())
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel (gh-86296).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                continue
            key, instruction = popped
            await self._write(self._play(key, instruction, now))

    async def _write(self, pcm: Pcm) -> None:
        if self.output.blocking:
            # A sound device's write waits for the hardware: never on the event loop.
            await asyncio.to_thread(self.output.write, pcm)
        else:
            self.output.write(pcm)

    def _play(
        self, key: tuple[int, str, int], instruction: Play | Recover | Conceal, now: float
    ) -> Pcm:
        """Decode the frame the jitter buffer says is due; returns its audio."""
        decoder = self._decoders.get(key)
        if decoder is None:
            decoder = self._decoders[key] = OpusDecoder()
            if len(self._decoders) > 16:
                del self._decoders[next(iter(self._decoders))]
        if self._current_burst != key:
            self._end_file_burst()
            self._current_burst = key
            if isinstance(self.output, WavDirectoryOutput):
                channel = self.client.channels.get(key[0], str(key[0]))
                self.output.start_burst(burst_file_name(time.time(), channel, key[1]))
        try:
            if isinstance(instruction, Play):
                pcm, seq = decoder.decode(instruction.payload), instruction.sequence
                kind = "repeat" if instruction.rescued else "play"
            elif isinstance(instruction, Recover):
                pcm, kind, seq = (
                    decoder.decode_fec(instruction.next_payload, self._samples),
                    "fec",
                    instruction.sequence,
                )
            else:
                pcm, kind, seq = decoder.conceal(self._samples), "plc", instruction.sequence
        except ValueError:
            pcm, kind, seq = (
                decoder.conceal(self._samples),
                "plc",
                getattr(instruction, "sequence", 0),
            )
        if self._on_played is not None:
            self._on_played(Played(key[1], key[0], seq, kind, now))
        self._burst_samples += len(pcm)
        return pcm

    def _burst_over(self, key: tuple[int, str, int]) -> bool:
        """Whether ``key``'s burst is over: its floor went, or the mixer forgot the talker (no
        floor message came). A gap inside a burst (a stalled link ran the buffer dry) is not:
        its file stays open, so each burst is one file."""
        return key in self._ended_bursts or self.mixer.buffer(key) is None

    def _end_file_burst(self) -> None:
        if self._current_burst is not None:
            self._ended_bursts.pop(self._current_burst, None)
        key, self._current_burst = self._current_burst, None
        samples, self._burst_samples = self._burst_samples, 0
        if key is None or not isinstance(self.output, WavDirectoryOutput):
            return
        path = self.output.end_burst()
        if path is not None and self._on_saved is not None:
            self._on_saved(SavedBurst(key[0], key[1], path, samples / SAMPLE_RATE))
