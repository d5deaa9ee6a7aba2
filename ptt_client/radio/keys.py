"""The radio's keys: what each key means (:data:`KEY_BINDINGS`, the one table the keypad, the
start-up help line and ``--help`` are made from; :class:`Keypad`, no I/O) and reading them
from the terminal, one by one and unechoed (:func:`cbreak_terminal`, :class:`TerminalKeys`).

What a command then does to the radio is :meth:`ptt_client.radio.app.Radio.handle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from ptt_protocol import control


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
    """e: alert, then 10 s of emergency-priority talk (i: an imminent peril's)."""

    peril: bool = False


@dataclass(frozen=True)
class CancelEmergency:
    """c: cancel the emergency."""


@dataclass(frozen=True)
class Compose:
    """The text being typed changed (shown in place of the status line): a text for the
    channel, or whom to call (``purpose`` is :data:`CALL_PROMPT` or :data:`EMERGENCY_CALL_PROMPT`)."""

    text: str
    purpose: str = "text"


@dataclass(frozen=True)
class SendText:
    """Enter while composing: send the text to the selected channel."""

    text: str


@dataclass(frozen=True)
class PlaceCall:
    """Enter after d (u: an emergency call): call the user typed (``USER`` or ``USER half``)."""

    words: str
    emergency: bool = False


@dataclass(frozen=True)
class CallKey:
    """a: answer the ringing call, r: refuse it, h: hang up."""

    action: str


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
    | PlaceCall
    | CallKey
    | ComposeCancelled
    | Quit
)

CALL_PROMPT: Final = "call"
EMERGENCY_CALL_PROMPT: Final = "emergency_call"


@dataclass(frozen=True)
class KeyBinding:
    """What one key (or a row of keys) does, as the keypad, the help line and --help say."""

    keys: str
    """The characters that press it (a letter also in upper case)."""
    label: str
    """How help names the key: ``space``, ``1-9``."""
    short: str
    """One word for the help line printed at start."""
    help: str
    """What it does, for ``ptt-radio --help``."""
    command: Callable[[str], KeyCommand]
    """The command for the character pressed."""


KEY_BINDINGS: Final[tuple[KeyBinding, ...]] = (
    KeyBinding(
        " ", "space", "talk", "PTT on / off (talks from the input until pressed again)",
        lambda _: TogglePtt(),
    ),
    KeyBinding(
        "123456789", "1-9", "channel", "select channel n (as numbered at start)",
        lambda key: SelectChannel(int(key)),
    ),
    KeyBinding(
        "s", "s", "status", "next status (available, busy, en route, on scene)",
        lambda _: CycleStatus(),
    ),
    KeyBinding(
        "e", "e", "emergency",
        "emergency: alert with the position, then the mic opens at emergency priority for 10 s",
        lambda _: RaiseEmergency(),
    ),
    KeyBinding(
        "i", "i", "peril",
        "imminent peril: the same, at the priority between emergency and dispatcher",
        lambda _: RaiseEmergency(peril=True),
    ),
    KeyBinding(
        "c", "c", "cancel", "cancel the emergency or imminent peril", lambda _: CancelEmergency()
    ),
    KeyBinding(
        "m", "m", "text", "type a text to the selected channel (Enter sends, Esc cancels)",
        lambda _: Compose(""),
    ),
    KeyBinding(
        "d", "d", "call",
        "private call: type a user id (and ' half' for half duplex, where space is the"
        " call's PTT), Enter dials, Esc cancels",
        lambda _: Compose("", CALL_PROMPT),
    ),
    KeyBinding(
        "u", "u", "urgent call",
        "emergency private call: the same, it pre-empts the callee's call and is answered at once",
        lambda _: Compose("", EMERGENCY_CALL_PROMPT),
    ),
    KeyBinding("a", "a", "answer", "answer the ringing call", lambda _: CallKey("answer")),
    KeyBinding("r", "r", "refuse", "refuse the ringing call", lambda _: CallKey("refuse")),
    KeyBinding("h", "h", "hang up", "hang up the call", lambda _: CallKey("hangup")),
    KeyBinding("q", "q", "quit", "quit", lambda _: Quit()),
)  # fmt: skip
"""Every key of the interactive radio, in the order help lists them."""

KEY_HELP: Final = "  ".join(f"{b.label}: {b.short}" for b in KEY_BINDINGS)
"""Printed when the interactive radio starts."""

_BY_KEY: Final[dict[str, KeyBinding]] = {key: b for b in KEY_BINDINGS for key in b.keys}


class Keypad:
    """Turns key presses (characters from a cbreak terminal) into radio commands; no I/O."""

    def __init__(self) -> None:
        self.composing: str | None = None
        """The text being typed after ``m`` (or whom to call, after ``d``/``u``), or ``None``."""
        self.purpose = "text"
        """What :attr:`composing` is for: ``text``, :data:`CALL_PROMPT`, :data:`EMERGENCY_CALL_PROMPT`."""

    def press(self, key: str) -> KeyCommand | None:
        """The command for one key, or ``None`` for keys that mean nothing here."""
        if self.composing is not None:
            return self._compose(key)
        binding = _BY_KEY.get(key) or _BY_KEY.get(key.lower())
        if binding is None:
            return None
        command = binding.command(key)
        if isinstance(command, Compose):
            self.composing, self.purpose = command.text, command.purpose
        return command

    def _compose(self, key: str) -> KeyCommand | None:
        assert self.composing is not None
        if key in ("\r", "\n"):
            text, self.composing = self.composing.strip(), None
            if not text:
                return ComposeCancelled()
            if self.purpose == "text":
                return SendText(text)
            return PlaceCall(text, emergency=self.purpose == EMERGENCY_CALL_PROMPT)
        if key == "\x1b":  # Esc (an arrow key's escape sequence cancels too)
            self.composing = None
            return ComposeCancelled()
        if key in ("\x7f", "\b"):
            self.composing = self.composing[:-1]
            return Compose(self.composing, self.purpose)
        if key.isprintable() and len(self.composing) < control.MAX_TEXT_LENGTH:
            self.composing += key
            return Compose(self.composing, self.purpose)
        return None


@contextlib.contextmanager
def cbreak_terminal(fd: int) -> Iterator[None]:
    """Keys arrive one by one, unechoed; the terminal is restored on any exit."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


class TerminalKeys:
    """The characters typed on terminal ``fd``, read by the running event loop as they come.

    Use it as a context manager (that registers and removes the reader). When the terminal
    goes away (end of file or a read error) ``on_gone`` is called, once.
    """

    def __init__(self, fd: int, on_gone: Callable[[], None]) -> None:
        self._fd = fd
        self._on_gone = on_gone
        self._loop = asyncio.get_running_loop()
        self._keys: asyncio.Queue[str] = asyncio.Queue()

    def __enter__(self) -> TerminalKeys:
        self._loop.add_reader(self._fd, self._readable)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._loop.remove_reader(self._fd)

    async def get(self) -> str:
        """The next character typed."""
        return await self._keys.get()

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, 64)
        except OSError:
            data = b""
        if not data:  # the terminal went away
            self._loop.remove_reader(self._fd)
            self._on_gone()
            return
        for char in data.decode(errors="ignore"):
            self._keys.put_nowait(char)
