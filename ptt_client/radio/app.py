"""The running radio: a logged-in :class:`~ptt_client.client.RadioClient` with its
transmitter and player, the position it follows, and the officer's actions, driven by keys
(:meth:`Radio.run_interactive`) or by a script (:meth:`Radio.run_script`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final

from crypto.errors import CryptoError
from ptt_client import events
from ptt_client.audio import (
    AudioError,
    AudioInput,
    AudioOutput,
    WavDirectoryOutput,
    WavFileInput,
    WavFileOutput,
)
from ptt_client.audio_devices import DeviceInput, DeviceOutput
from ptt_client.calls.manager import CallError
from ptt_client.client import ClientError, RadioClient
from ptt_client.gps import Position, PositionSource
from ptt_client.radio import own_notes
from ptt_client.radio.calling import RadioCalls
from ptt_client.radio.console import Console
from ptt_client.radio.display import Display, StatusView, channel_name, status_line
from ptt_client.radio.errors import EXIT_OK, EXIT_STARTUP, RadioError
from ptt_client.radio.keys import (
    CALL_PROMPT,
    KEY_HELP,
    CallKey,
    CancelEmergency,
    Compose,
    ComposeCancelled,
    CycleStatus,
    KeyCommand,
    Keypad,
    PlaceCall,
    Quit,
    RaiseEmergency,
    SelectChannel,
    SendText,
    TerminalKeys,
    TogglePtt,
)
from ptt_client.radio.notes import Note, note
from ptt_client.radio.session_notes import SessionNotes
from ptt_client.script import CHANNEL_TARGET, SETTABLE_STATUSES, CallStep, Step, run_script
from ptt_client.voice import Player, TalkResult, Transmitter
from ptt_protocol import control

EMERGENCY_TALK_S: Final = 10.0
"""The mic opens this long after an emergency alert (as Zello Work and MCPTT radios do)."""

JOIN_TIMEOUT: Final = 10.0
"""Seconds to wait for the channel list, the affiliation and the channel key after login."""

LOCATION_INTERVAL: Final = 30.0
"""Send the position at most this often (dispatch maps need minutes, not seconds)."""

REDRAW_INTERVAL: Final = 0.5


def open_output(spec: str, frame_ms: int) -> AudioOutput:
    """``speaker`` -> the default sound device; ``*.wav`` -> one file; else a directory."""
    try:
        if spec == "speaker":
            return DeviceOutput(None, frame_ms)
        if spec.lower().endswith(".wav"):
            return WavFileOutput(spec)
        return WavDirectoryOutput(spec)
    except AudioError as exc:
        raise RadioError(f"--output {spec!r}: {exc}") from None


def input_opener(spec: str, frame_ms: int) -> Callable[[], AudioInput]:
    """A function that opens the input afresh for each press (a WAV file plays from its start)."""

    def open_input() -> AudioInput:
        if spec == "mic":
            return DeviceInput(None, frame_ms)
        return WavFileInput(spec, frame_ms)

    return open_input


class Radio:
    """A logged-in radio: the client, its transmitter and player, and the officer's actions.

    Implements :class:`ptt_client.script.RadioActions`, so a script drives it as keys do.
    """

    def __init__(
        self,
        client: RadioClient,
        *,
        open_input: Callable[[], AudioInput],
        output: AudioOutput,
        console: Console,
        frame_ms: int = 20,
        position_source: PositionSource | None = None,
        tones: bool = True,
        call_input: str | None = None,
        call_output: str | None = None,
        auto_answer: bool = True,
        call_relay_only: bool = False,
    ) -> None:
        """``call_input`` / ``call_output``: what private calls speak from and play to
        (:class:`~ptt_client.radio.calling.RadioCalls`); ``auto_answer``: answer calls at once
        when the caller asks (MCPTT automatic commencement), else they ring."""
        self.client = client
        self.console = console
        self.open_input = open_input
        self.transmitter = Transmitter(client, frame_ms=frame_ms)
        self.player = Player(client, output, frame_ms=frame_ms, tones=tones)
        self.display = Display(client, self.player)
        self.session_notes = SessionNotes(
            client.user_id,
            lambda: client.server_url,
            lambda channel_id: channel_name(client, channel_id),
            headless=not console.live,
            use_udp=client.media.use_udp,
        )
        self.calls = RadioCalls(
            client,
            tell=self.tell,
            call_input=call_input,
            call_output=call_output,
            auto_answer=auto_answer,
            relay_only=call_relay_only,
        )
        self.position_source = position_source
        self.position: Position | None = None
        self.quit = asyncio.Event()
        self.exit_code = EXIT_OK
        self._talk_task: asyncio.Task[TalkResult] | None = None
        self._emergency_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._login: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()
        self._errors: list[control.Error] = []
        self._affiliated: set[int] = set()
        """Channels the server confirmed (Affiliated)."""
        self._channel_list_seen = False
        self._stopping = False
        self.keypad = Keypad()

    # --- starting and stopping -------------------------------------------------------------

    async def start(self, channel: str, scan: Sequence[str] = ()) -> None:
        """Log in, join ``channel`` and the scan channels, start playing; RadioError if not."""
        self._tasks.append(asyncio.create_task(self._follow_events()))
        await self.client.start()
        outcome = await self._login
        if isinstance(outcome, events.LoginRefused):
            raise RadioError(
                f"login refused by {self.client.server_url}: {outcome.text or outcome.code}"
            )
        main = await self._channel_id(channel)
        scanned = [await self._channel_id(name) for name in scan if name != channel]
        await self._join(main, select=True)
        for channel_id in scanned:
            await self._join(channel_id, select=False)
        if not await self._wait(lambda: self._can_talk(main), JOIN_TIMEOUT):
            self.tell(own_notes.no_key(channel))
        self.player.start()
        if self.position_source is not None:
            self._tasks.append(asyncio.create_task(self._follow_position()))
        self._tasks.append(asyncio.create_task(self._redraw_periodically()))
        choices = [name for _, name in self.channel_choices()]
        self.tell(own_notes.ready(self.client.user_id, channel, choices))

    @property
    def logged_in(self) -> bool:
        """The radio has reached the server and logged in (at least once)."""
        return self.session_notes.logged_in

    def tell(self, told: Note, *, headless_only: bool = False) -> None:
        """Write one note (``headless_only``: the status line shows it on a terminal)."""
        if not (headless_only and self.console.live):
            self.console.note(told)

    async def stop(self) -> None:
        """Stop talking, playing and following; log out."""
        self._stopping = True
        await self._stop_talking()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.player.stop()
        await self.client.stop()
        self.calls.close_audio()  # the call client.stop() ended, its events no longer read

    async def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return True

    def channel_by_name(self, name: str) -> int | None:
        for channel_id, known in sorted(self.client.channels.items()):
            if known == name:
                return channel_id
        return None

    async def _channel_id(self, name: str) -> int:
        # The server sends the list of the user's channels right after login.
        await self._wait(
            lambda: self._channel_list_seen or self.channel_by_name(name) is not None,
            JOIN_TIMEOUT,
        )
        channel_id = self.channel_by_name(name)
        if channel_id is None:
            known = ", ".join(sorted(self.client.channels.values())) or "none"
            raise RadioError(
                f"unknown channel {name!r}: this credential may join {known}"
                " (ask a dispatcher to add you)"
            )
        return channel_id

    async def _join(self, channel_id: int, *, select: bool) -> None:
        errors_before = len(self._errors)
        await self.client.affiliate(channel_id, select=select)
        joined = await self._wait(
            lambda: channel_id in self._affiliated or len(self._errors) > errors_before,
            JOIN_TIMEOUT,
        )
        name = channel_name(self.client, channel_id)
        if len(self._errors) > errors_before:
            error = self._errors[-1]
            raise RadioError(f"cannot join {name!r}: {error.text or error.code}")
        if not joined:
            raise RadioError(
                f"the server did not confirm joining {name!r} within {JOIN_TIMEOUT:g} s"
            )

    def _can_talk(self, channel_id: int) -> bool:
        keys = self.client.keyring.channels.get(channel_id)
        return keys is not None and keys.sealer is not None

    def channel_choices(self) -> list[tuple[int, str]]:
        """Channels the digit keys select, in channel-id order."""
        return sorted(self.client.channels.items())[:9]

    # --- the actions (script and keys) -----------------------------------------------------

    async def talk(self, duration: float | None = None, priority: int | None = None) -> None:
        """Talk from the input for ``duration`` s (or until the input ends or PTT is toggled);
        in a half-duplex private call, hold the call's floor instead."""
        if self.calls.half_duplex and priority is None and duration is not None:
            await self.calls.talk_for(duration)
            return
        result = await self._transmit(
            lambda source: self.transmitter.talk(source, duration=duration, priority=priority)
        )
        if result is None:
            return
        if result.outcome == "granted":
            self.player.roger()
        channel = channel_name(self.client, self.client.selected)
        hint = self.console.live and bool(self.client.keys_down())
        told = own_notes.talk_ended(channel, result, self.transmitter.frame_ms, ptt_still_on=hint)
        # On a terminal the status line shows the floor; headless, the floor's own notes
        # (floor_denied, floor_revoked) said it already.
        self.tell(told, headless_only=result.outcome in ("granted", "denied", "revoked"))

    async def broadcast(self, duration: float, channels: Sequence[str]) -> None:
        """A broadcast group call (dispatchers; TS 22.179 6.2.3): talk from the input for
        ``duration`` s to every channel named, at once, one way (joining them if needed)."""
        channel_ids = [await self._channel_id(name) for name in channels]
        for channel_id in channel_ids:
            if channel_id not in self.client.affiliated:
                await self._join(channel_id, select=False)
        if not await self._wait(lambda: all(map(self._can_talk, channel_ids)), JOIN_TIMEOUT):
            raise RadioError(f"no key yet for every channel of {', '.join(channels)}: try again")
        result = await self._transmit(
            lambda source: self.transmitter.broadcast(source, channel_ids, duration=duration)
        )
        if result is not None:
            self.tell(own_notes.broadcast_ended(", ".join(channels), result))

    async def _transmit(
        self, start: Callable[[AudioInput], Coroutine[Any, Any, TalkResult]]
    ) -> TalkResult | None:
        await self._stop_talking()
        try:
            source = self.open_input()
        except AudioError as exc:
            self.tell(own_notes.error("cannot open the input", exc))
            return None
        task = asyncio.create_task(start(source))
        self._talk_task = task
        self._redraw()
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            # Cancelled (quit, or a newer press): release the floor properly before leaving.
            self.transmitter.stop()
            with contextlib.suppress(Exception):
                await task
            raise
        finally:
            source.close()
            if self._talk_task is task:
                self._talk_task = None
            self._redraw()

    @property
    def transmitting(self) -> bool:
        return self._talk_task is not None and not self._talk_task.done()

    async def _stop_talking(self) -> None:
        task = self._talk_task
        if task is not None and not task.done():
            self.transmitter.stop()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task

    async def toggle_ptt(self) -> None:
        """Space: PTT on, or off. The key is latched: after the floor was taken away (an
        emergency pre-empted this radio) or denied, PTT off only lets go of the key and
        sends nothing; the client's floor participant knows it is still down (issue 10).
        In a half-duplex private call it asks for the call's floor, or gives it back."""
        if self.calls.half_duplex and not self.transmitting:
            await self.calls.toggle_talk()
            self._redraw()
        elif self.transmitting:
            await self._stop_talking()
        elif held := self.client.keys_down():
            for channel_id in held:
                await self.client.release(channel_id)
            self.console.line("PTT off (the floor had gone already: nothing sent)")  # keys only
            self._redraw()
        else:
            self._spawn(self.talk())

    async def set_status(self, name: str) -> None:
        await self.client.set_status(name)
        self.tell(note("status", f"status: {name}", status=name), headless_only=True)
        self._redraw()

    async def cycle_status(self) -> None:
        current = self.client.status
        index = SETTABLE_STATUSES.index(current) if current in SETTABLE_STATUSES else -1
        await self.set_status(SETTABLE_STATUSES[(index + 1) % len(SETTABLE_STATUSES)])

    async def raise_emergency(self, *, peril: bool = False) -> None:
        """Alert with the position, then talk at its priority for 10 s (``peril``: an
        imminent peril, between emergency and dispatcher)."""
        position = self.position or (
            self.position_source.latest if self.position_source is not None else None
        )
        lat, lon = (position.lat, position.lon) if position is not None else (None, None)
        await self.client.raise_emergency(lat, lon, peril=peril)
        channel = channel_name(self.client, self.client.selected)
        self.tell(own_notes.emergency_raised(channel, lat, lon, EMERGENCY_TALK_S, peril=peril))
        await self.talk(EMERGENCY_TALK_S, self.client.core.default_priority())

    async def cancel_emergency(self) -> None:
        if self._emergency_task is not None and not self._emergency_task.done():
            self._emergency_task.cancel()
        await self._stop_talking()
        await self.client.cancel_emergency()
        # Over only when the server says so (a cancel can be refused): the confirmation is
        # the "emergency cancelled" line the server's answer brings.
        self.tell(note("emergency_cancel_sent", "emergency cancel sent", by=self.client.user_id))
        self._redraw()

    async def send_text(self, to: str, words: str) -> None:
        if to == CHANNEL_TARGET:
            if self.client.selected is None:
                raise RadioError("no channel selected to send the text to")
            await self.client.send_text(words, to_channel=self.client.selected)
        else:
            await self.client.send_text(words, to_user=to)

    async def select(self, channel_name: str) -> None:
        channel_id = self.channel_by_name(channel_name)
        if channel_id is None:
            raise RadioError(f"unknown channel {channel_name!r}")
        await self._select_id(channel_id)

    async def _select_id(self, channel_id: int) -> None:
        if channel_id in self.client.affiliated:
            await self.client.select(channel_id)
        else:
            await self.client.affiliate(channel_id, select=True)
        name = channel_name(self.client, channel_id)
        self.tell(note("channel_selected", f"talking on {name}", channel=name), headless_only=True)
        self._redraw()

    async def call(self, step: CallStep) -> None:
        """The script's ``call`` step (the keys ``d`` and ``u`` dial through ``self.calls``)."""
        await self.calls.call(step)
        self._redraw()

    async def call_action(self, action: str) -> None:
        """The script's ``answer`` / ``refuse`` (waiting for a call to ring) and ``hangup``."""
        await self.calls.action(action, wait=True)
        self._redraw()

    async def _place_call(self, command: PlaceCall) -> None:
        user, *options = command.words.split()
        if any(word != "half" for word in options):
            raise RadioError(f"call {command.words!r}: type a user id, then ' half' if wanted")
        await self.calls.dial(user, half=bool(options), emergency=command.emergency)

    # --- interactive -----------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except (ClientError, RadioError, CryptoError, AudioError, OSError, CallError) as exc:
                self.tell(own_notes.error("error", exc))

        self._tasks.append(asyncio.create_task(guarded()))
        self._tasks = [t for t in self._tasks if not t.done()]

    async def handle(self, command: KeyCommand) -> None:
        """Carry out one key command (the interactive mode's dispatcher)."""
        if isinstance(command, TogglePtt):
            await self.toggle_ptt()
        elif isinstance(command, SelectChannel):
            choices = self.channel_choices()
            if command.number <= len(choices):
                self._spawn(self._select_id(choices[command.number - 1][0]))
        elif isinstance(command, CycleStatus):
            self._spawn(self.cycle_status())
        elif isinstance(command, RaiseEmergency):
            task = asyncio.create_task(self._guarded_emergency(command.peril))
            self._emergency_task = task
            self._tasks.append(task)
        elif isinstance(command, CancelEmergency):
            self._spawn(self.cancel_emergency())
        elif isinstance(command, Compose):
            if command.purpose == "text":
                prompt = f"message to {channel_name(self.client, self.client.selected)}"
            elif command.purpose == CALL_PROMPT:
                prompt = "call (user id, ' half' for half duplex)"
            else:
                prompt = "EMERGENCY call (user id)"
            self.console.status(f"{prompt}> {command.text}")
        elif isinstance(command, PlaceCall):
            self._spawn(self._place_call(command))
            self._redraw()
        elif isinstance(command, CallKey):
            self._spawn(self.calls.action(command.action))
        elif isinstance(command, SendText):
            self._spawn(self.send_text(CHANNEL_TARGET, command.text))
            self._redraw()
        elif isinstance(command, ComposeCancelled):
            self._redraw()
        elif isinstance(command, Quit):
            self.quit.set()

    async def _guarded_emergency(self, peril: bool) -> None:
        try:
            await self.raise_emergency(peril=peril)
        except (ClientError, RadioError, CryptoError, AudioError, OSError) as exc:
            self.tell(own_notes.error("error", exc))

    async def run_interactive(self, fd: int) -> None:
        """Read keys from terminal ``fd`` until ``q`` (or a signal sets :attr:`quit`)."""
        with TerminalKeys(fd, on_gone=self.quit.set) as keys:
            self.console.line(KEY_HELP)
            self._redraw()
            quitting = asyncio.create_task(self.quit.wait())
            try:
                while not self.quit.is_set():
                    getting = asyncio.create_task(keys.get())
                    await asyncio.wait({getting, quitting}, return_when=asyncio.FIRST_COMPLETED)
                    if not getting.done():
                        getting.cancel()
                        break
                    command = self.keypad.press(getting.result())
                    if command is not None:
                        await self.handle(command)
            finally:
                quitting.cancel()

    async def run_script(self, steps: Sequence[Step]) -> None:
        """Run the script; a failed step is reported and the script goes on."""

        def report(step: Step, exc: Exception) -> None:
            self.tell(own_notes.script_error(step, step.at, exc))

        script = asyncio.create_task(run_script(steps, self, on_error=report))
        quitting = asyncio.create_task(self.quit.wait())
        try:
            await asyncio.wait({script, quitting}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (script, quitting):
                task.cancel()
            await asyncio.gather(script, quitting, return_exceptions=True)
        if script.done() and not script.cancelled():
            script.result()  # an unexpected error inside the runner

    # --- what the radio hears --------------------------------------------------------------

    async def _follow_events(self) -> None:
        while not self._stopping:
            try:
                event = await self.client.next_event(timeout=3600)
            except TimeoutError:
                continue
            if self._stopping:
                # stop() sets the flag before it cancels this task: an event taken as the
                # cancellation lands is not shown (and the loop ends even if it were lost).
                return
            try:
                self._on_event(event)
            except Exception as exc:  # a display bug must not silence the radio
                self.tell(own_notes.error(f"error showing {type(event).__name__}", exc))
            self._changed.set()
            if not isinstance(event, events.VoiceFrame):  # 50 a second: the timer redraws
                self._redraw()

    def _on_event(self, event: object) -> None:
        client = self.client
        if isinstance(event, events.Connected):
            if not self._login.done():
                self._login.set_result(event)
        elif isinstance(event, events.LoginRefused):
            if not self._login.done():
                self._login.set_result(event)
            else:
                self.exit_code = EXIT_STARTUP
                self.quit.set()
        elif isinstance(event, control.ChannelList):
            self._channel_list_seen = True
        elif isinstance(event, control.Affiliated):
            self._affiliated.add(event.channel_id)
        elif isinstance(event, control.Error):
            self._errors.append(event)
        for told in self.session_notes.notes(event):
            self.console.note(told)
        for told in self.calls.on_event(event):
            self.console.note(told)
        shown = self.display.event_note(event)
        if shown is not None:
            self.console.note(shown)
            if isinstance(event, events.TextReceived) and event.from_user != client.user_id:
                # A headless radio shows a text by printing it: printed is read.
                self._spawn(client.mark_read(event.message_id))

    async def _follow_position(self) -> None:
        assert self.position_source is not None
        last_sent = -math.inf
        positions = self.position_source.positions()
        try:
            async for position in positions:
                self.position = position
                now = asyncio.get_running_loop().time()
                if now - last_sent >= LOCATION_INTERVAL and self.client.connected.is_set():
                    with contextlib.suppress(ClientError, OSError):
                        await self.client.send_location(position.lat, position.lon)
                        last_sent = now
        finally:
            aclose = getattr(positions, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _redraw_periodically(self) -> None:
        while True:
            await asyncio.sleep(REDRAW_INTERVAL)
            self._redraw()

    # --- status line -----------------------------------------------------------------------

    def view(self) -> StatusView:
        """The status line's contents, from the client's state."""
        view = self.display.view(transmitting=self.transmitting)
        return dataclasses.replace(view, call=self.calls.status())

    def _redraw(self) -> None:
        if self.console.live and self.keypad.composing is None:
            self.console.status(status_line(self.view()))
