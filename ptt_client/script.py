"""The ``--script`` language of ``ptt-radio``: a timed list of radio actions for headless boxes.

    talk 0.5 4.0; status on_scene 5; emergency 7; text 8 channel 'on scene now';
    cancel 12; select patrol 13; call 14 bob for 30; quit 60

Steps are separated by ``;`` and split like a shell line (:mod:`shlex`), so a text with spaces
or a ``;`` is quoted. Every step has an absolute start time in seconds from the start of the
script (when the radio has joined its channel). The steps and what they do are the table
:data:`SCRIPT_STEPS`, which ``ptt-radio --help`` prints. A radio that has not joined yet
still honours ``quit AT``: it stops AT seconds after it started trying.

:func:`parse_script` is pure and raises :class:`ScriptError` with a one-line message naming the
bad step and what was expected. :func:`run_script` executes the steps at their times against a
:class:`RadioActions` object, with time read from an injected :class:`Clock`.
"""

from __future__ import annotations

import asyncio
import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias

from ptt_protocol import control

MAX_TIME: Final = 86_400.0
"""Latest step time and longest talk (one day): a larger number is a typo, not a plan."""

SETTABLE_STATUSES: Final[tuple[str, ...]] = (
    control.STATUS_AVAILABLE,
    control.STATUS_BUSY,
    control.STATUS_EN_ROUTE,
    control.STATUS_ON_SCENE,
)
"""Statuses an officer sets by hand; ``emergency`` and ``offline`` follow from alerts and
sessions."""

CHANNEL_TARGET: Final = "channel"
"""The ``text`` destination that means "the selected channel"."""


class ScriptError(ValueError):
    """The script cannot be parsed; the message names the step and what was expected."""


@dataclass(frozen=True)
class TalkStep:
    """Press PTT at ``at`` and talk from the input for ``duration`` seconds."""

    at: float
    duration: float


@dataclass(frozen=True)
class BroadcastStep:
    """A dispatcher's broadcast group call (TS 22.179 6.2.3): at ``at``, talk from the input
    for ``duration`` seconds to every channel of ``channels`` (names) at once, one way."""

    at: float
    duration: float
    channels: tuple[str, ...]


@dataclass(frozen=True)
class StatusStep:
    """Set the officer status (one of :data:`SETTABLE_STATUSES`)."""

    at: float
    status: str


@dataclass(frozen=True)
class EmergencyStep:
    """Raise an emergency alert (``peril``: an imminent-peril one), with position, and talk
    at its priority."""

    at: float
    peril: bool = False


@dataclass(frozen=True)
class CancelStep:
    """Cancel this radio's emergency."""

    at: float


@dataclass(frozen=True)
class TextStep:
    """Send ``words`` to the selected channel (``to == "channel"``) or to user ``to``."""

    at: float
    to: str
    words: str


@dataclass(frozen=True)
class SelectStep:
    """Select channel ``channel`` (by name) for transmit."""

    at: float
    channel: str


@dataclass(frozen=True)
class CallStep:
    """Place a private call to ``user`` (TS 23.379); ``duration``: hang up that many seconds
    after it connects (``None``: it lasts until a hang-up). ``half``: half duplex;
    ``ring``: ask the callee to answer by hand (manual commencement)."""

    at: float
    user: str
    duration: float | None = None
    half: bool = False
    emergency: bool = False
    ring: bool = False


@dataclass(frozen=True)
class CallActionStep:
    """``answer`` (the call ringing at AT, or the next one to ring), ``refuse`` (the same) or
    ``hangup`` (the current call)."""

    at: float
    action: str


@dataclass(frozen=True)
class QuitStep:
    """Stop: running talks are stopped and the script returns."""

    at: float


Step: TypeAlias = (
    TalkStep
    | BroadcastStep
    | StatusStep
    | EmergencyStep
    | CancelStep
    | TextStep
    | SelectStep
    | CallStep
    | CallActionStep
    | QuitStep
)


@dataclass(frozen=True)
class StepSyntax:
    """One step of the language: how it is written and what it does."""

    usage: str
    """The step's name, then its arguments: ``talk START DURATION``."""
    help: str
    kind: type[Step]

    @property
    def name(self) -> str:
        return self.usage.split()[0]


SCRIPT_STEPS: Final[tuple[StepSyntax, ...]] = (
    StepSyntax(
        "talk START DURATION",
        "press PTT at START, talk from the input for DURATION seconds",
        TalkStep,
    ),
    StepSyntax("status NAME AT", f"set the status ({', '.join(SETTABLE_STATUSES)})", StatusStep),
    StepSyntax(
        "emergency AT",
        "raise an emergency: alert with the position, then the mic opens at emergency"
        " priority for 10 s",
        EmergencyStep,
    ),
    StepSyntax(
        "peril AT",
        "raise an imminent peril: the same, at the priority between emergency and dispatcher",
        EmergencyStep,
    ),
    StepSyntax("cancel AT", "cancel this radio's emergency or imminent peril", CancelStep),
    StepSyntax(
        "text AT channel|USER 'words'",
        "send a text to the selected channel or to a user id",
        TextStep,
    ),
    StepSyntax(
        "select CHANNEL AT", "switch the transmit channel (joining it if needed)", SelectStep
    ),
    StepSyntax(
        "broadcast START DURATION CHANNEL,CHANNEL",
        f"dispatchers: talk from the input for DURATION seconds to up to {control.MAX_PATCHED}"
        " channels at once, one way, over their ordinary talk (joining them if needed)",
        BroadcastStep,
    ),
    StepSyntax(
        "call AT USER [for SECONDS] [half] [emergency] [ring]",
        "a private call to a user id, hung up SECONDS after it connects (full duplex; half:"
        " half duplex, where talk takes the call's floor; emergency: pre-empts the callee's"
        " call and is answered at once; ring: the callee answers by hand)",
        CallStep,
    ),
    StepSyntax(
        "answer AT", "answer the call ringing at AT, or the next one to ring", CallActionStep
    ),
    StepSyntax(
        "refuse AT", "refuse the call ringing at AT, or the next one to ring", CallActionStep
    ),
    StepSyntax("hangup AT", "end the private call", CallActionStep),
    StepSyntax("quit AT", "stop everything and exit (also while still connecting)", QuitStep),
)
"""Every step, in the order help lists them; the parser checks arguments against these."""

SCRIPT_EXAMPLE: Final = "talk 0.5 4; status on_scene 5; text 8 channel 'on scene now'; quit 15"
"""The example ``ptt-radio --help`` shows (it parses: the tests check)."""

_USAGE: Final[dict[str, str]] = {step.name: step.usage for step in SCRIPT_STEPS}


class _StepError(Exception):
    """What is wrong inside one step; :func:`parse_script` adds which step it is."""


def _seconds(word: str, what: str, *, positive: bool = False) -> float:
    try:
        value = float(word)
    except ValueError:
        raise _StepError(f"{what} {word!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or value > MAX_TIME:
        raise _StepError(f"{what} {word!r} must be between 0 and {MAX_TIME:g} seconds")
    if positive and value == 0:
        raise _StepError(f"{what} must be more than 0 seconds")
    return value


def _user_id(word: str, what: str = "recipient") -> str:
    if not 1 <= len(word) <= control.MAX_ID_LENGTH or any(c.isspace() for c in word):
        either = "'channel' or " if what == "recipient" else ""
        raise _StepError(
            f"{what} {word!r} must be {either}a user id"
            f" (1-{control.MAX_ID_LENGTH} characters, no spaces)"
        )
    return word


CALL_OPTIONS: Final = ("half", "emergency", "ring")
"""The words a ``call`` step may end with, in any order."""


def _call_step(args: list[str], usage: str) -> CallStep:
    if len(args) < 2:
        raise _StepError(f"expected `{usage}` (at least 2 arguments, got {len(args)})")
    at, user, rest = _seconds(args[0], "AT"), _user_id(args[1], "callee"), args[2:]
    duration = None
    if rest[:1] == ["for"]:
        if len(rest) < 2:
            raise _StepError("`for` needs the call's length in seconds, e.g. call 5 bob for 30")
        duration, rest = _seconds(rest[1], "SECONDS", positive=True), rest[2:]
    unknown = [word for word in rest if word not in CALL_OPTIONS]
    if unknown or len(set(rest)) != len(rest):
        raise _StepError(
            f"expected `{usage}`: {' '.join(unknown or rest)!r} is not"
            f" {', '.join(CALL_OPTIONS)} (each once)"
        )
    return CallStep(at, user, duration, "half" in rest, "emergency" in rest, ring="ring" in rest)


def _channel_names(word: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in word.split(","))
    if not all(names) or any(len(name) > control.MAX_TEXT_LENGTH for name in names):
        raise _StepError(f"channels {word!r}: name them separated by commas, e.g. patrol,traffic")
    if len(names) > control.MAX_PATCHED:
        raise _StepError(f"a broadcast reaches at most {control.MAX_PATCHED} channels")
    if len(set(names)) != len(names):
        raise _StepError(f"channels {word!r} name a channel twice")
    return names


def _parse_step(words: list[str]) -> Step:
    command, args = words[0], words[1:]
    usage = _USAGE.get(command)
    if usage is None:
        raise _StepError(f"unknown command {command!r}: expected one of {', '.join(_USAGE)}")
    if command == "call":
        return _call_step(args, usage)
    expected_args = len(usage.split()) - 1
    if len(args) != expected_args:
        raise _StepError(
            f"expected `{usage}` ({expected_args} argument{'s' * (expected_args != 1)},"
            f" got {len(args)})"
        )
    if command == "talk":
        return TalkStep(_seconds(args[0], "START"), _seconds(args[1], "DURATION", positive=True))
    if command == "broadcast":
        start, duration = _seconds(args[0], "START"), _seconds(args[1], "DURATION", positive=True)
        return BroadcastStep(start, duration, _channel_names(args[2]))
    if command == "status":
        if args[0] not in SETTABLE_STATUSES:
            raise _StepError(f"status {args[0]!r} is not one of {', '.join(SETTABLE_STATUSES)}")
        return StatusStep(_seconds(args[1], "AT"), args[0])
    if command in ("emergency", "peril"):
        return EmergencyStep(_seconds(args[0], "AT"), peril=command == "peril")
    if command == "cancel":
        return CancelStep(_seconds(args[0], "AT"))
    if command == "text":
        at = _seconds(args[0], "AT")
        to = args[1] if args[1] == CHANNEL_TARGET else _user_id(args[1])
        words_ = args[2]
        if not words_.strip():
            raise _StepError("the text is empty: quote the words, e.g. text 8 channel 'on scene'")
        if len(words_) > control.MAX_TEXT_LENGTH:
            raise _StepError(f"the text is longer than {control.MAX_TEXT_LENGTH} characters")
        return TextStep(at, to, words_)
    if command == "select":
        if not args[0].strip() or len(args[0]) > control.MAX_TEXT_LENGTH:
            raise _StepError(f"channel name {args[0]!r} is empty or too long")
        return SelectStep(_seconds(args[1], "AT"), args[0])
    if command in ("answer", "refuse", "hangup"):
        return CallActionStep(_seconds(args[0], "AT"), command)
    return QuitStep(_seconds(args[0], "AT"))


def _split_on_semicolons(text: str) -> list[str]:
    """Cut at every ``;`` outside quotes, following the quoting rules :mod:`shlex` applies."""
    pieces: list[str] = []
    current: list[str] = []
    quote: str | None = None
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quote == "'":
            quote = None if char == "'" else quote
        elif char == "\\":
            escaped = True  # outside quotes and inside double quotes alike
        elif quote == '"':
            quote = None if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char == ";":
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    pieces.append("".join(current))
    return pieces


def _split_steps(text: str) -> list[list[str]]:
    # Splitting on ';' first, rather than letting shlex return ';' as a token, keeps a quoted
    # ';' (a text that is just ";") apart from a step separator.
    steps = []
    for piece in _split_on_semicolons(text):
        try:
            words = shlex.split(piece, comments=False)  # '#' is text in a message
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise ScriptError(f"script: {str(exc).lower()}: close every quote") from None
        if words:
            steps.append(words)
    return steps


def _describe(number: int, words: Sequence[str]) -> str:
    # One line whatever the script held: control characters are shown escaped.
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in shlex.join(words))
    return f"step {number} `{shown}`"


def parse_script(text: str) -> list[Step]:
    """Parse a script into steps ordered by start time (steps at the same time keep their order).

    Raises :class:`ScriptError` for an empty script, an unknown command, a wrong number of
    arguments, a bad time, status or recipient, talks that overlap, and steps after ``quit``.
    """
    raw_steps = _split_steps(text)
    if not raw_steps:
        raise ScriptError("the script is empty: expected steps like `talk 0.5 4.0; quit 10`")
    parsed: list[tuple[int, list[str], Step]] = []
    for number, words in enumerate(raw_steps, start=1):
        try:
            parsed.append((number, words, _parse_step(words)))
        except _StepError as exc:
            raise ScriptError(f"{_describe(number, words)}: {exc}") from None
    parsed.sort(key=lambda item: item[2].at)  # stable: same-time steps run as written
    quits = [item for item in parsed if isinstance(item[2], QuitStep)]
    if len(quits) > 1:
        raise ScriptError(f"{_describe(quits[1][0], quits[1][1])}: the script has two quits")
    talk_end: tuple[float, int, list[str]] | None = None
    for number, words, step in parsed:
        if quits and step.at > quits[0][2].at:
            raise ScriptError(
                f"{_describe(number, words)}: starts after"
                f" `{shlex.join(quits[0][1])}`: move it before the quit"
            )
        if isinstance(step, TalkStep | BroadcastStep):
            # One transmitter: a second press while talking would cut the first burst short.
            if talk_end is not None and step.at < talk_end[0]:
                raise ScriptError(
                    f"{_describe(number, words)}: overlaps"
                    f" `{shlex.join(talk_end[2])}`, which talks until {talk_end[0]:g} s"
                )
            talk_end = (step.at + step.duration, number, words)
    return [step for _, _, step in parsed]


class RadioActions(Protocol):
    """What a script can make a radio do (``ptt-radio`` adapts a RadioClient to it).

    ``talk``, ``broadcast`` and ``raise_emergency`` may take seconds (they transmit),
    ``call`` lasts the call's ``duration`` and ``call_action`` (``answer``, ``refuse``,
    ``hangup``) may wait for a call to ring; the others return quickly. A cancelled ``talk``
    or ``broadcast`` must release the floor before it re-raises.
    """

    async def talk(self, duration: float) -> None: ...

    async def broadcast(self, duration: float, channels: Sequence[str]) -> None: ...

    async def set_status(self, name: str) -> None: ...

    async def raise_emergency(self, *, peril: bool = False) -> None: ...

    async def cancel_emergency(self) -> None: ...

    async def send_text(self, to: str, words: str) -> None: ...

    async def select(self, channel_name: str) -> None: ...

    async def call(self, step: CallStep) -> None: ...

    async def call_action(self, action: str) -> None: ...


class Clock(Protocol):
    """Time for :func:`run_script`: ``now()`` in seconds and ``sleep(seconds)``."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Executed:
    """A step and when it started, in seconds from the start of the script."""

    step: Step
    started: float


async def _perform(step: Step, actions: RadioActions) -> None:
    if isinstance(step, TalkStep):
        await actions.talk(step.duration)
    elif isinstance(step, BroadcastStep):
        await actions.broadcast(step.duration, step.channels)
    elif isinstance(step, StatusStep):
        await actions.set_status(step.status)
    elif isinstance(step, EmergencyStep):
        await actions.raise_emergency(peril=step.peril)
    elif isinstance(step, CancelStep):
        await actions.cancel_emergency()
    elif isinstance(step, TextStep):
        await actions.send_text(step.to, step.words)
    elif isinstance(step, SelectStep):
        await actions.select(step.channel)
    elif isinstance(step, CallStep):
        await actions.call(step)
    elif isinstance(step, CallActionStep):
        await actions.call_action(step.action)


async def run_script(
    steps: Sequence[Step],
    actions: RadioActions,
    clock: Clock | None = None,
    *,
    on_error: Callable[[Step, Exception], None] | None = None,
) -> list[Executed]:
    """Run ``steps`` at their times; return what ran and when.

    ``talk``, ``broadcast``, ``emergency`` and the call steps run in the background so later
    steps keep their times (a status change during a talk); the other steps are awaited in order, so ``select patrol 13;
    talk 13 2`` selects before it talks. ``quit`` cancels what still runs; without a quit the
    script ends when the last talk does. An action that raises is passed to ``on_error`` and
    the script goes on; without ``on_error`` the error propagates (running talks are cancelled).
    """
    clock = clock or LoopClock()
    start = clock.now()
    executed: list[Executed] = []
    background: list[asyncio.Task[None]] = []

    async def guarded(step: Step) -> None:
        try:
            await _perform(step, actions)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(step, exc)

    try:
        for step in sorted(steps, key=lambda s: s.at):
            # Absolute schedule: a slow step does not push the later ones back.
            delay = start + step.at - clock.now()
            if delay > 0:
                await clock.sleep(delay)
            for task in background:
                if task.done():
                    task.result()  # surface a failed background step now
            executed.append(Executed(step, clock.now() - start))
            if isinstance(step, QuitStep):
                break
            if isinstance(
                step, TalkStep | BroadcastStep | EmergencyStep | CallStep | CallActionStep
            ):
                background.append(asyncio.create_task(guarded(step)))
                await asyncio.sleep(0)  # let it start now, before the next step's wait
            else:
                await guarded(step)
        else:
            await asyncio.gather(*background)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
    return executed
