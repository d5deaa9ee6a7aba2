"""``ptt-radio``: a push-to-talk radio in a terminal, or headless from a script.

    ptt-radio --credential FILE [--passphrase-env VAR] [--server wss://HOST:PORT]
              --channel NAME [--input mic|FILE.wav] [--output speaker|FILE.wav|DIR]
              [--script "..."] [--list-devices] [--gps HOST:PORT | --position LAT,LON]
              [--scan NAME,NAME] [--no-udp] [--frame-ms 20]

It logs in with the credential bundle, joins ``--channel`` (and listens to every ``--scan``
channel: the player picks the highest-priority stream), plays what it hears on the output
(a directory gets one WAV per received burst) and then either runs ``--script`` (see
:mod:`ptt_client.script`) or reads keys from the terminal:

=========  ====================================================================
space      PTT on / off (talks from the input until pressed again)
1-9        select channel n (as numbered at start)
s          next status (available, busy, en route, on scene)
e          emergency: alert with position, then the mic opens at emergency
           priority for 10 s
c          cancel the emergency
m          type a text to the selected channel (Enter sends, Esc cancels)
q          quit
=========  ====================================================================

A status line, redrawn in place, shows the channel, the floor, the talker ("verified" once
the talker's burst signature checked), the media path (udp/tunnel) and the link quality
(frames lost in the jitter buffer). Received texts and alerts print on their own lines.

Anything that stops the radio from starting (bad arguments, credential file or passphrase,
refused login, unknown channel) is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import signal
import sys
import termios
import threading
import time
import tty
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NoReturn, TextIO

from crypto.bundle import CredentialBundle, check_server_url
from crypto.errors import CryptoError
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import (
    AudioError,
    AudioInput,
    AudioOutput,
    DeviceInput,
    DeviceOutput,
    WavDirectoryOutput,
    WavFileInput,
    WavFileOutput,
    list_devices,
)
from ptt_client.client import ClientError, FloorView, RadioClient
from ptt_client.codec import FRAME_MS_CHOICES
from ptt_client.gps import GpsError, Position, PositionSource, open_source
from ptt_client.script import (
    CHANNEL_TARGET,
    SETTABLE_STATUSES,
    ScriptError,
    Step,
    parse_script,
    run_script,
)
from ptt_client.voice import Player, TalkResult, Transmitter
from ptt_protocol import control

PROG: Final = "ptt-radio"

EXIT_OK: Final = 0
EXIT_RUNTIME: Final = 1
EXIT_STARTUP: Final = 2
"""Bad arguments, credential, passphrase, refused login or unknown channel (as argparse)."""

EMERGENCY_TALK_S: Final = 10.0
"""The mic opens this long after an emergency alert (as Zello Work and MCPTT radios do)."""

JOIN_TIMEOUT: Final = 10.0
"""Seconds to wait for the channel list, the affiliation and the channel key after login."""

LOCATION_INTERVAL: Final = 30.0
"""Send the position at most this often (dispatch maps need minutes, not seconds)."""

REDRAW_INTERVAL: Final = 0.5

ALERTS_REMEMBERED: Final = 256
"""Alert ids already shown: the server sends an active alert again when it is updated."""

MAX_CREDENTIAL_FILE: Final = 64 * 1024
"""Bundles are a few KB; refuse to read a huge file by mistake."""


class RadioError(Exception):
    """The radio cannot start or go on; the message (one line) says why and what to do."""


# --- arguments --------------------------------------------------------------------------------


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting: errors are one line."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The ``ptt-radio`` flags (errors raise instead of exiting; :func:`main` prints them)."""
    parser = _Parser(prog=PROG, description="Fieldradio push-to-talk radio.")
    parser.add_argument("--credential", type=Path, help="credential bundle file from ptt-admin")
    parser.add_argument(
        "--passphrase-env", metavar="VAR", help="environment variable holding the passphrase"
    )
    parser.add_argument("--server", help="override the bundle's server, wss://HOST:PORT")
    parser.add_argument("--channel", help="channel to join and talk on (by name)")
    parser.add_argument("--input", default="mic", help="'mic' (default) or a WAV file to talk from")
    parser.add_argument(
        "--output",
        default="speaker",
        help="'speaker' (default), a FILE.wav, or a directory (one WAV per received burst)",
    )
    parser.add_argument("--script", help="run these timed steps instead of reading keys")
    parser.add_argument(
        "--list-devices", action="store_true", help="print the sound devices and exit"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--gps", metavar="HOST:PORT", help="follow gpsd for the position")
    where.add_argument("--position", metavar="LAT,LON", help="a fixed position")
    parser.add_argument("--scan", default="", help="also listen to these channels: NAME,NAME")
    parser.add_argument("--no-udp", action="store_true", help="send media over the WebSocket")
    parser.add_argument(
        "--frame-ms", type=int, default=20, help="Opus frame size in ms (10, 20, 40, 60)"
    )
    return parser


@dataclass(frozen=True)
class RadioOptions:
    """The command line, checked: everything needed before touching the network."""

    credential: Path
    passphrase_env: str | None
    server: str | None
    channel: str
    input: str
    output: str
    script: list[Step] | None
    scan: tuple[str, ...]
    use_udp: bool
    frame_ms: int
    gps: str | None
    position: str | None


def parse_options(args: argparse.Namespace) -> RadioOptions:
    """Check the parsed flags; raises :class:`RadioError` with the flag and the expected form."""
    if args.credential is None:
        raise RadioError("--credential FILE is required (the bundle from `ptt-admin enroll`)")
    if not args.channel:
        raise RadioError("--channel NAME is required")
    if args.frame_ms not in FRAME_MS_CHOICES:
        raise RadioError(
            f"--frame-ms {args.frame_ms}: use one of {', '.join(map(str, FRAME_MS_CHOICES))}"
        )
    if args.server is not None:
        try:
            check_server_url(args.server)
        except CryptoError:
            raise RadioError(
                f"--server {args.server!r}: expected wss://HOST:PORT, e.g. wss://relay.example.org:7300"
            ) from None
    script = None
    if args.script is not None:
        try:
            script = parse_script(args.script)
        except ScriptError as exc:
            raise RadioError(f"--script: {exc}") from None
    scan = tuple(name.strip() for name in args.scan.split(",") if name.strip())
    try:
        open_source(args.gps, args.position)  # checks the syntax; connects later
    except GpsError as exc:
        raise RadioError(str(exc)) from None
    if args.input != "mic" and not Path(args.input).is_file():
        raise RadioError(f"--input {args.input!r}: no such file (give 'mic' or a WAV file)")
    return RadioOptions(
        credential=args.credential,
        passphrase_env=args.passphrase_env,
        server=args.server,
        channel=args.channel,
        input=args.input,
        output=args.output,
        script=script,
        scan=scan,
        use_udp=not args.no_udp,
        frame_ms=args.frame_ms,
        gps=args.gps,
        position=args.position,
    )


def load_credential(
    path: Path, passphrase_env: str | None, environ: dict[str, str] | os._Environ[str] = os.environ
) -> tuple[CredentialBundle, DeviceKeys]:
    """Read and open the bundle; every failure is a :class:`RadioError` saying what to do."""
    passphrase = None
    if passphrase_env is not None:
        passphrase = environ.get(passphrase_env)
        if passphrase is None:
            raise RadioError(
                f"--passphrase-env {passphrase_env}: that environment variable is not set"
            )
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_CREDENTIAL_FILE + 1)
    except OSError as exc:
        raise RadioError(
            f"cannot read credential file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    if len(data) > MAX_CREDENTIAL_FILE:
        raise RadioError(f"{str(path)!r} is too large to be a credential bundle")
    try:
        bundle = CredentialBundle.from_bytes(data)
    except CryptoError as exc:
        raise RadioError(f"{str(path)!r} is not a usable credential bundle: {exc}") from None
    try:
        keys = bundle.open_keys(passphrase)
        bundle.verify(time.time())
    except CryptoError as exc:
        hint = "" if passphrase_env else " (if it has a passphrase, use --passphrase-env VAR)"
        raise RadioError(f"{exc}{hint}") from None
    return bundle, keys


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


# --- terminal: keys and the status line --------------------------------------------------------


@dataclass(frozen=True)
class TogglePtt:
    """Space: PTT on, or off if talking."""


@dataclass(frozen=True)
class SelectChannel:
    """1-9: select that channel."""

    number: int
    """1-9, as listed at start."""


@dataclass(frozen=True)
class CycleStatus:
    """s: the next status."""


@dataclass(frozen=True)
class RaiseEmergency:
    """e: alert, then 10 s of emergency-priority talk."""


@dataclass(frozen=True)
class CancelEmergency:
    """c: cancel the emergency."""


@dataclass(frozen=True)
class Compose:
    """The text being typed changed (shown in place of the status line)."""

    text: str


@dataclass(frozen=True)
class SendText:
    """Enter while composing: send the text to the selected channel."""

    text: str


@dataclass(frozen=True)
class ComposeCancelled:
    """Esc (or Enter on nothing) while composing."""


@dataclass(frozen=True)
class Quit:
    """q: leave."""


KeyCommand = (
    TogglePtt
    | SelectChannel
    | CycleStatus
    | RaiseEmergency
    | CancelEmergency
    | Compose
    | SendText
    | ComposeCancelled
    | Quit
)

_KEYS: Final[dict[str, KeyCommand]] = {
    " ": TogglePtt(),
    "s": CycleStatus(),
    "e": RaiseEmergency(),
    "c": CancelEmergency(),
    "q": Quit(),
}


class Keypad:
    """Turns key presses (characters from a cbreak terminal) into radio commands; no I/O."""

    def __init__(self) -> None:
        self.composing: str | None = None
        """The text being typed after ``m``, or ``None``."""

    def press(self, key: str) -> KeyCommand | None:
        """The command for one key, or ``None`` for keys that mean nothing here."""
        if self.composing is not None:
            return self._compose(key)
        if key == "m":
            self.composing = ""
            return Compose("")
        if key in "123456789" and len(key) == 1:
            return SelectChannel(int(key))
        return _KEYS.get(key.lower())

    def _compose(self, key: str) -> KeyCommand | None:
        assert self.composing is not None
        if key in ("\r", "\n"):
            text, self.composing = self.composing.strip(), None
            return SendText(text) if text else ComposeCancelled()
        if key == "\x1b":  # Esc (an arrow key's escape sequence cancels too)
            self.composing = None
            return ComposeCancelled()
        if key in ("\x7f", "\b"):
            self.composing = self.composing[:-1]
            return Compose(self.composing)
        if key.isprintable() and len(self.composing) < control.MAX_TEXT_LENGTH:
            self.composing += key
            return Compose(self.composing)
        return None


@dataclass(frozen=True)
class StatusView:
    """What the status line shows."""

    channel: str
    connected: bool
    floor: str
    """idle, requested, granted, queued, taken, denied, revoked"""
    talker: str = ""
    verified: bool = False
    heard_on: str = ""
    """A scanned channel the talker is on, when it is not the selected one."""
    queue_position: int = 0
    media: str = "udp"
    loss_percent: float | None = None
    status: str = control.STATUS_AVAILABLE
    emergency: bool = False
    transmitting: bool = False


def status_line(view: StatusView) -> str:
    """One line, e.g. ``patrol | RX Bob Brown verified | udp | loss 1.2% | on_scene``."""
    parts = [view.channel]
    if not view.connected:
        parts.append("offline, reconnecting")
    elif view.transmitting or view.floor == "granted":
        parts.append("TX")
    elif view.talker:
        heard = f" on {view.heard_on}" if view.heard_on else ""
        parts.append(f"RX {view.talker}{' verified' if view.verified else ''}{heard}")
    elif view.floor == "queued":
        parts.append(f"queued #{view.queue_position}")
    else:
        parts.append(view.floor)
    parts.append(view.media)
    parts.append("loss -" if view.loss_percent is None else f"loss {view.loss_percent:.1f}%")
    parts.append(view.status)
    line = " | ".join(parts)
    return f"EMERGENCY | {line}" if view.emergency else line


class Console:
    """Where the radio writes: whole lines always, the status line only on a live terminal."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._status = ""

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(f"{stamp} {text}\n")
        if self.live and self._status:
            self.out.write(self._status)
        self.out.flush()

    def status(self, text: str) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size((100, 24)).columns
        self._status = text[: max(10, width - 1)]
        self.out.write("\r\x1b[K" + self._status)
        self.out.flush()

    def finish(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()


@contextlib.contextmanager
def cbreak_terminal(fd: int) -> Iterator[None]:
    """Keys arrive one by one, unechoed; the terminal is restored on any exit."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


# --- the radio ---------------------------------------------------------------------------------


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
    ) -> None:
        self.client = client
        self.console = console
        self.open_input = open_input
        self.transmitter = Transmitter(client, frame_ms=frame_ms)
        self.player = Player(client, output, frame_ms=frame_ms, tones=tones)
        self.position_source = position_source
        self.position: Position | None = None
        self.quit = asyncio.Event()
        self.exit_code = EXIT_OK
        self._verified: dict[int, int] = {}
        """channel -> burst id whose talker signature verified."""
        self._distrusted: dict[int, int] = {}
        """channel -> burst id found forged or unverified: never shown verified."""
        self._last_heard: tuple[int, str, int] | None = None
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
        self._disconnect_reported = False
        self._alerts_shown: OrderedDict[bytes, None] = OrderedDict()
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
            self.console.line(
                f"no key for {channel!r} yet: you will hear and talk once a dispatcher sends it"
            )
        self.player.start()
        if self.position_source is not None:
            self._tasks.append(asyncio.create_task(self._follow_position()))
        self._tasks.append(asyncio.create_task(self._redraw_periodically()))
        self.console.line(f"{self.client.user_id} on {channel!r}: " + self._channel_menu())

    async def stop(self) -> None:
        """Stop talking, playing and following; log out."""
        self._stopping = True
        await self._stop_talking()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.player.stop()
        await self.client.stop()

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
        name = self.client.channels.get(channel_id, str(channel_id))
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

    def _channel_menu(self) -> str:
        return "  ".join(f"{n}:{name}" for n, (_, name) in enumerate(self.channel_choices(), 1))

    # --- the actions (script and keys) -----------------------------------------------------

    async def talk(self, duration: float | None = None, priority: int | None = None) -> None:
        """Talk from the input for ``duration`` s (or until the input ends or PTT is toggled)."""
        result = await self._transmit(duration, priority)
        if result is not None and result.outcome == "granted":
            self.player.roger()
        elif result is not None:
            detail = f" ({result.cause})" if result.cause else ""
            self.console.line(f"talk: {result.outcome}{detail}")

    async def _transmit(self, duration: float | None, priority: int | None) -> TalkResult | None:
        await self._stop_talking()
        try:
            source = self.open_input()
        except AudioError as exc:
            self.console.line(f"cannot open the input: {exc}")
            return None
        task = asyncio.create_task(
            self.transmitter.talk(source, duration=duration, priority=priority)
        )
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
        if self.transmitting:
            await self._stop_talking()
        else:
            self._spawn(self.talk())

    async def set_status(self, name: str) -> None:
        await self.client.set_status(name)
        self._redraw()

    async def cycle_status(self) -> None:
        current = self.client.status
        index = SETTABLE_STATUSES.index(current) if current in SETTABLE_STATUSES else -1
        await self.set_status(SETTABLE_STATUSES[(index + 1) % len(SETTABLE_STATUSES)])

    async def raise_emergency(self) -> None:
        """Alert with the position, then talk at emergency priority for 10 s."""
        position = self.position or (
            self.position_source.latest if self.position_source is not None else None
        )
        lat, lon = (position.lat, position.lon) if position is not None else (None, None)
        await self.client.raise_emergency(lat, lon)
        where = f" at {lat:.5f},{lon:.5f}" if lat is not None and lon is not None else ""
        self.console.line(f"EMERGENCY raised{where}: talking for {EMERGENCY_TALK_S:g} s")
        await self.talk(EMERGENCY_TALK_S, control.PRIORITY_MAX)

    async def cancel_emergency(self) -> None:
        if self._emergency_task is not None and not self._emergency_task.done():
            self._emergency_task.cancel()
        await self._stop_talking()
        await self.client.cancel_emergency()
        self.console.line("emergency cancelled")
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
        self._redraw()

    # --- interactive -----------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except (ClientError, RadioError, CryptoError, AudioError, OSError) as exc:
                self.console.line(f"error: {exc}")

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
            task = asyncio.create_task(self._guarded_emergency())
            self._emergency_task = task
            self._tasks.append(task)
        elif isinstance(command, CancelEmergency):
            self._spawn(self.cancel_emergency())
        elif isinstance(command, Compose):
            self.console.status(f"message to {self._selected_name()}> {command.text}")
        elif isinstance(command, SendText):
            self._spawn(self.send_text(CHANNEL_TARGET, command.text))
            self._redraw()
        elif isinstance(command, ComposeCancelled):
            self._redraw()
        elif isinstance(command, Quit):
            self.quit.set()

    async def _guarded_emergency(self) -> None:
        try:
            await self.raise_emergency()
        except (ClientError, RadioError, CryptoError, AudioError, OSError) as exc:
            self.console.line(f"error: {exc}")

    async def run_interactive(self, fd: int) -> None:
        """Read keys from terminal ``fd`` until ``q`` (or a signal sets :attr:`quit`)."""
        loop = asyncio.get_running_loop()
        keys: asyncio.Queue[str] = asyncio.Queue()

        def readable() -> None:
            try:
                data = os.read(fd, 64)
            except OSError:
                data = b""
            if not data:  # the terminal went away
                loop.remove_reader(fd)
                self.quit.set()
                return
            for char in data.decode(errors="ignore"):
                keys.put_nowait(char)

        loop.add_reader(fd, readable)
        self.console.line(
            "space: talk  1-9: channel  s: status  e: emergency  c: cancel  m: text  q: quit"
        )
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
            loop.remove_reader(fd)
            quitting.cancel()

    async def run_script(self, steps: Sequence[Step]) -> None:
        """Run the script; a failed step is reported and the script goes on."""

        def report(step: Step, exc: Exception) -> None:
            self.console.line(f"script: {type(step).__name__} at {step.at:g} s failed: {exc}")

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
                # Python 3.11's wait_for (inside next_event) drops a cancellation that lands
                # as an event arrives (gh-86296): stop() sets the flag, so leave anyway.
                return
            try:
                self._on_event(event)
            except Exception as exc:  # a display bug must not silence the radio
                self.console.line(f"error showing {type(event).__name__}: {exc}")
            self._changed.set()
            if not isinstance(event, events.VoiceFrame):  # 50 a second: the timer redraws
                self._redraw()

    def _on_event(self, event: object) -> None:
        client = self.client
        if isinstance(event, events.Connected):
            if not self._login.done():
                self._login.set_result(event)
            elif event.reconnect:
                self.console.line("link restored")
            self._disconnect_reported = False
        elif isinstance(event, events.LoginRefused):
            if not self._login.done():
                self._login.set_result(event)
            else:
                self.console.line(f"login refused: {event.text or event.code}")
                self.exit_code = EXIT_STARTUP
                self.quit.set()
        elif isinstance(event, events.Disconnected):
            if not self._disconnect_reported:
                self.console.line(f"link to {client.server_url} lost ({event.reason}): retrying")
                self._disconnect_reported = True
        elif isinstance(event, control.ChannelList):
            self._channel_list_seen = True
        elif isinstance(event, control.Affiliated):
            self._affiliated.add(event.channel_id)
        elif isinstance(event, control.Error):
            self._errors.append(event)
            self.console.line(f"server: {event.text or event.code}")
        elif isinstance(event, events.EpochInstalled):
            name = client.channels.get(event.channel_id, str(event.channel_id))
            self.console.line(
                f"keys: {name} epoch {event.epoch}, made by {event.creator_name or event.creator}"
                f" ({event.creator_role})"
            )
        elif isinstance(event, events.EpochRefused):
            name = client.channels.get(event.channel_id, str(event.channel_id))
            self.console.line(
                f"WARNING: key epoch {event.epoch} for {name} from {event.creator or '?'}"
                f" refused: {event.reason}"
            )
        elif isinstance(event, events.TalkerVerified):
            # A later statement vouches for later frames, not for what went unverified.
            if self._distrusted.get(event.channel_id) != event.burst_id:
                self._verified[event.channel_id] = event.burst_id
        elif isinstance(event, (events.ForgedAudio, events.TalkerUnverified)):
            self._distrusted[event.channel_id] = event.burst_id
            if self._verified.get(event.channel_id) == event.burst_id:
                del self._verified[event.channel_id]
            what = "did not verify" if isinstance(event, events.ForgedAudio) else "is unverified"
            self.console.line(f"WARNING: audio claimed as {event.talker} {what}: {event.reason}")
        elif isinstance(event, events.TextReceived):
            where = (
                f" on {client.channels.get(event.to_channel, event.to_channel)}"
                if event.to_channel is not None
                else " (direct)"
            )
            self.console.line(f"text from {event.from_user}{where}: {event.text}")
        elif isinstance(event, control.EmergencyAlert) and event.user_id != client.user_id:
            if self._first_sight(event.alert_id):
                name = client.channels.get(event.channel_id, str(event.channel_id))
                self.console.line(f"EMERGENCY: {event.user_id} on {name}")
        elif isinstance(event, control.EmergencyCancel) and event.by_user != client.user_id:
            self.console.line(f"emergency cancelled by {event.by_user}")
        elif isinstance(event, control.FloorRevoke):
            self.console.line(
                f"floor revoked on {client.channels.get(event.channel_id)}: {event.cause}"
            )
        elif isinstance(event, control.Goodbye):
            self.console.line(f"server says goodbye: {event.reason}")

    def _first_sight(self, alert_id: bytes) -> bool:
        """True the first time ``alert_id`` is seen (one line per emergency, not per update)."""
        if alert_id in self._alerts_shown:
            return False
        self._alerts_shown[alert_id] = None
        if len(self._alerts_shown) > ALERTS_REMEMBERED:
            self._alerts_shown.popitem(last=False)
        return True

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

    def _selected_name(self) -> str:
        selected = self.client.selected
        return "-" if selected is None else self.client.channels.get(selected, str(selected))

    def view(self) -> StatusView:
        """The status line's contents, from the client's state."""
        client = self.client
        selected = client.selected
        floor = client.floors.get(selected, FloorView()) if selected is not None else FloorView()
        talker_channel = selected
        if not (floor.state == "taken" and floor.talker):
            # Scanning: show a talker on another affiliated channel.
            for channel_id in sorted(client.affiliated):
                other = client.floors.get(channel_id)
                if other is not None and other.state == "taken" and other.talker:
                    floor, talker_channel = other, channel_id
                    break
        talking = floor.state == "taken" and bool(floor.talker)
        current = self.player.mixer.current
        if current is not None:
            self._last_heard = current
        loss = None
        if self._last_heard is not None:
            buffer = self.player.mixer.buffer(self._last_heard)
            if buffer is not None and buffer.stats.played + buffer.stats.lost:
                stats = buffer.stats
                loss = 100.0 * stats.lost / (stats.played + stats.lost)
        return StatusView(
            channel=self._selected_name(),
            connected=client.connected.is_set(),
            floor=floor.state,
            talker=(floor.talker_name or floor.talker or "") if talking else "",
            verified=talking
            and talker_channel is not None
            and self._verified.get(talker_channel) == floor.burst_id,
            heard_on=(
                client.channels.get(talker_channel, "")
                if talking and talker_channel != selected and talker_channel is not None
                else ""
            ),
            queue_position=floor.queue_position,
            media=client.media_path,
            loss_percent=loss,
            status=client.status,
            emergency=client.emergency_alert is not None,
            transmitting=self.transmitting,
        )

    def _redraw(self) -> None:
        if self.console.live and self.keypad.composing is None:
            self.console.status(status_line(self.view()))


# --- main -------------------------------------------------------------------------------------


async def run_radio(options: RadioOptions, bundle: CredentialBundle, keys: DeviceKeys) -> int:
    """Run the radio until the script ends, ``q``, SIGINT or SIGTERM; return the exit status."""
    interactive = options.script is None
    fd = -1
    if interactive:
        with contextlib.suppress(OSError, ValueError):  # stdin closed or replaced
            fd = sys.stdin.fileno()
    if interactive and (fd < 0 or not os.isatty(fd)):
        raise RadioError(
            "interactive mode needs a terminal on stdin: use --script for headless use"
        )
    output = open_output(options.output, options.frame_ms)
    console = Console(sys.stdout, live=interactive and sys.stdout.isatty())
    try:
        client = RadioClient(bundle, keys, server_url=options.server, use_udp=options.use_udp)
        radio = Radio(
            client,
            open_input=input_opener(options.input, options.frame_ms),
            output=output,
            console=console,
            frame_ms=options.frame_ms,
            position_source=open_source(options.gps, options.position),
            # Tones belong in the officer's ear, not in a recording of what was received.
            tones=options.output == "speaker",
        )
        loop = asyncio.get_running_loop()
        # Signal handlers can only be set from the main thread (tests run main() in a worker).
        in_main_thread = threading.current_thread() is threading.main_thread()
        stop_signals = (signal.SIGINT, signal.SIGTERM) if in_main_thread else ()
        for sig in stop_signals:
            loop.add_signal_handler(sig, radio.quit.set)
        try:
            starting = asyncio.create_task(radio.start(options.channel, options.scan))
            quitting = asyncio.create_task(radio.quit.wait())
            # Ctrl-C while the server is unreachable (the client retries for ever) must work.
            await asyncio.wait({starting, quitting}, return_when=asyncio.FIRST_COMPLETED)
            quitting.cancel()
            if not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                console.line("stopped before joining the channel")
                return EXIT_RUNTIME
            starting.result()  # RadioError: refused login, unknown channel, ...
            if options.script is not None:
                await radio.run_script(options.script)
            else:
                with cbreak_terminal(fd):
                    await radio.run_interactive(fd)
        finally:
            for sig in stop_signals:
                loop.remove_signal_handler(sig)
            await radio.stop()
            console.finish()
        return radio.exit_code
    finally:
        output.close()


def _list_devices() -> int:
    try:
        devices = list_devices()
    except AudioError as exc:
        raise RadioError(str(exc)) from None
    if not devices:
        print("no sound devices found (PortAudio sees none): use --input FILE.wav and --output")
    for line in devices:
        print(line)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """The ``ptt-radio`` entry point; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.list_devices:
            return _list_devices()
        options = parse_options(args)
        bundle, keys = load_credential(options.credential, options.passphrase_env)
        return asyncio.run(run_radio(options, bundle, keys))
    except _UsageError as exc:
        print(f"{PROG}: {exc} (see {PROG} --help)", file=sys.stderr)
        return EXIT_STARTUP
    except RadioError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:  # before the event loop's own SIGINT handling is in place
        return 130


if __name__ == "__main__":
    sys.exit(main())
