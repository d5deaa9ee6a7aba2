"""The ``--script`` language: parsing (every malformed case) and running on an injected clock."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client.script import (
    SETTABLE_STATUSES,
    BroadcastStep,
    CallActionStep,
    CallStep,
    CancelStep,
    EmergencyStep,
    LoopClock,
    QuitStep,
    ScriptError,
    SelectStep,
    StatusStep,
    Step,
    TalkStep,
    TextStep,
    parse_script,
    run_script,
)

EXAMPLE = (
    "talk 0.5 4.0; status on_scene 5; emergency 7; text 8 channel 'on scene now'; "
    "cancel 12; select patrol 13; quit 15"
)

# --- parsing ---------------------------------------------------------------------------------


def test_peril_is_an_imminent_peril_step() -> None:
    assert parse_script("peril 3; cancel 9") == [EmergencyStep(3.0, peril=True), CancelStep(9.0)]


def test_call_steps_take_their_options_in_any_order() -> None:
    assert parse_script("call 1 bob; call 2 bob for 30 half; call 3 c emergency ring half") == [
        CallStep(1.0, "bob"),
        CallStep(2.0, "bob", 30.0, half=True),
        CallStep(3.0, "c", None, half=True, emergency=True, ring=True),
    ]
    assert parse_script("answer 1; refuse 2; hangup 3") == [
        CallActionStep(1.0, "answer"),
        CallActionStep(2.0, "refuse"),
        CallActionStep(3.0, "hangup"),
    ]


def test_parses_the_documented_example() -> None:
    assert parse_script(EXAMPLE) == [
        TalkStep(0.5, 4.0),
        StatusStep(5.0, "on_scene"),
        EmergencyStep(7.0),
        TextStep(8.0, "channel", "on scene now"),
        CancelStep(12.0),
        SelectStep(13.0, "patrol"),
        QuitStep(15.0),
    ]


def test_quoted_semicolons_and_hashes_stay_in_the_text() -> None:
    steps = parse_script("""text 1 alice "meet at #4; north gate";quit 2;""")
    assert steps == [TextStep(1.0, "alice", "meet at #4; north gate"), QuitStep(2.0)]


def test_a_quoted_or_escaped_semicolon_is_text_not_a_separator() -> None:
    steps = parse_script("""text 1 channel ';'; text 2 bob a\\;b; text 3 bob "x\\";y"; quit 4""")
    assert steps == [
        TextStep(1.0, "channel", ";"),
        TextStep(2.0, "bob", "a;b"),
        TextStep(3.0, "bob", 'x";y'),
        QuitStep(4.0),
    ]


def test_steps_are_ordered_by_time_and_same_time_steps_keep_their_order() -> None:
    steps = parse_script("talk 13 2; select patrol 13; status busy 1;; quit 20")
    assert steps == [
        StatusStep(1.0, "busy"),
        TalkStep(13.0, 2.0),
        SelectStep(13.0, "patrol"),
        QuitStep(20.0),
    ]


def test_a_broadcast_names_its_start_duration_and_channels() -> None:
    assert parse_script("broadcast 1 4 patrol,traffic; talk 5 1") == [
        BroadcastStep(1.0, 4.0, ("patrol", "traffic")),
        TalkStep(5.0, 1.0),
    ]
    assert parse_script("broadcast 0 1 ' north , south '") == [
        BroadcastStep(0.0, 1.0, ("north", "south"))
    ]


def test_back_to_back_talks_do_not_overlap() -> None:
    assert parse_script("talk 0 2; talk 2 1") == [TalkStep(0.0, 2.0), TalkStep(2.0, 1.0)]


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("", "the script is empty"),
        (" ;; ", "the script is empty"),
        ("jump 3", "step 1 `jump 3`: unknown command 'jump': expected one of talk, status"),
        ("quit 9; talk 1", "step 2 `talk 1`: expected `talk START DURATION` (2 arguments, got 1)"),
        ("talk 1 2 3", "step 1 `talk 1 2 3`: expected `talk START DURATION`"),
        ("talk soon 2", "step 1 `talk soon 2`: START 'soon' is not a number of seconds"),
        ("talk 1 0", "step 1 `talk 1 0`: DURATION must be more than 0 seconds"),
        ("talk -1 2", "START '-1' must be between 0 and 86400 seconds"),
        ("talk nan 2", "START 'nan' must be between 0 and 86400 seconds"),
        ("talk 1 inf", "DURATION 'inf' must be between 0 and 86400 seconds"),
        ("talk 1 1e9", "DURATION '1e9' must be between 0 and 86400 seconds"),
        (
            "status sleeping 3",
            "status 'sleeping' is not one of available, busy, en_route, on_scene",
        ),
        ("status offline 3", "status 'offline' is not one of"),
        ("status on_scene", "expected `status NAME AT` (2 arguments, got 1)"),
        ("emergency", "expected `emergency AT` (1 argument, got 0)"),
        ("cancel now", "AT 'now' is not a number of seconds"),
        ("text 3 channel", "expected `text AT channel|USER 'words'` (3 arguments, got 2)"),
        ("text 3 channel '  '", "the text is empty"),
        ("text 3 'al ice' hi", "recipient 'al ice' must be 'channel' or a user id"),
        ("text 3 " + "u" * 65 + " hi", "must be 'channel' or a user id (1-64 characters"),
        ("text 3 channel " + "w" * 4097, "the text is longer than 4096 characters"),
        ("text 3 channel 'on scene", "script: no closing quotation: close every quote"),
        ("select patrol", "expected `select CHANNEL AT` (2 arguments, got 1)"),
        ("select '' 4", "channel name '' is empty or too long"),
        ("call 3", "expected `call AT USER [for SECONDS] [half] [emergency] [ring]` (at least"),
        ("call 3 bob for", "`for` needs the call's length in seconds"),
        ("call 3 bob for 0", "SECONDS must be more than 0 seconds"),
        ("call 3 bob loud", "'loud' is not half, emergency, ring (each once)"),
        ("call 3 bob half half", "'half half' is not half, emergency, ring (each once)"),
        ("call 3 'b ob'", "callee 'b ob' must be a user id"),
        ("hangup", "expected `hangup AT` (1 argument, got 0)"),
        ("broadcast 1 2", "expected `broadcast START DURATION CHANNEL,CHANNEL` (3 arguments"),
        ("broadcast 1 0 patrol", "DURATION must be more than 0 seconds"),
        ("broadcast 1 2 patrol,,traffic", "name them separated by commas, e.g. patrol,traffic"),
        ("broadcast 1 2 " + ",".join("abcdefghi"), "a broadcast reaches at most 8 channels"),
        ("broadcast 1 2 patrol,patrol", "name a channel twice"),
        (
            "talk 0 4; broadcast 2 1 patrol",
            "step 2 `broadcast 2 1 patrol`: overlaps `talk 0 4`, which talks until 4 s",
        ),
        ("quit", "expected `quit AT` (1 argument, got 0)"),
        ("quit 1; quit 2", "step 2 `quit 2`: the script has two quits"),
        ("quit 5; talk 6 1", "step 2 `talk 6 1`: starts after `quit 5`: move it before the quit"),
        (
            "talk 0.5 4; status busy 1; talk 3 1",
            "step 3 `talk 3 1`: overlaps `talk 0.5 4`, which talks until 4.5 s",
        ),
    ],
)
def test_malformed_scripts_get_a_one_line_error(script: str, expected: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(script)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def _format(step: Step) -> str:
    """Write a step back as script text (the inverse of parsing, independent of the parser)."""
    match step:
        case TalkStep(at, duration):
            return f"talk {at!r} {duration!r}"
        case StatusStep(at, status):
            return f"status {status} {at!r}"
        case EmergencyStep(at):
            return f"emergency {at!r}"
        case CancelStep(at):
            return f"cancel {at!r}"
        case TextStep(at, to, words):
            return f"text {at!r} {shlex.quote(to)} {shlex.quote(words)}"
        case SelectStep(at, channel):
            return f"select {shlex.quote(channel)} {at!r}"
        case CallStep(at, user, duration, half, emergency, ring):
            length = f" for {duration!r}" if duration is not None else ""
            flags = [
                w for w, on in (("half", half), ("emergency", emergency), ("ring", ring)) if on
            ]
            return f"call {at!r} {shlex.quote(user)}{length} {' '.join(flags)}"
        case CallActionStep(at, action):
            return f"{action} {at!r}"
        case BroadcastStep(at, duration, channels):
            return f"broadcast {at!r} {duration!r} {shlex.quote(','.join(channels))}"
        case QuitStep(at):
            return f"quit {at!r}"
    raise AssertionError(step)


_times = st.floats(min_value=0, max_value=86_400, allow_nan=False)
_ids = st.text(st.characters(blacklist_categories=("Zs", "Cc")), min_size=1, max_size=64)
_words = st.text(min_size=1, max_size=200).filter(lambda w: w.strip() != "")
_steps = st.one_of(
    st.builds(StatusStep, _times, st.sampled_from(SETTABLE_STATUSES)),
    st.builds(EmergencyStep, _times),
    st.builds(CancelStep, _times),
    st.builds(TextStep, _times, st.one_of(st.just("channel"), _ids), _words),
    st.builds(SelectStep, _times, _words),
    st.builds(
        CallStep,
        _times,
        _ids,
        st.one_of(st.none(), st.floats(min_value=0.001, max_value=86_400)),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    st.builds(CallActionStep, _times, st.sampled_from(["answer", "refuse", "hangup"])),
)


@settings(max_examples=200)
@given(st.lists(_steps, min_size=1, max_size=8))
def test_written_steps_parse_back_to_the_same_steps(steps: list[Step]) -> None:
    text = "; ".join(_format(step) for step in steps)
    assert parse_script(text) == sorted(steps, key=lambda s: s.at)


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_any_text_parses_or_raises_script_error(text: str) -> None:
    try:
        steps = parse_script(text)
    except ScriptError as exc:
        assert "\n" not in str(exc)
    else:
        assert steps


# --- running ---------------------------------------------------------------------------------


class SteppedClock:
    """Virtual time: ``sleep`` jumps straight to the wake-up time (one sleeper at a time)."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


class RecordingRadio:
    """A :class:`RadioActions` that records each call and the (virtual) time it came."""

    def __init__(self, clock: SteppedClock | LoopClock, start: float) -> None:
        self.clock = clock
        self.start = start
        self.calls: list[tuple[float, str, tuple[object, ...]]] = []
        self.fail: dict[str, Exception] = {}
        self.talk_forever = False
        self.talk_seconds = 0.0
        self.talk_cancelled = False
        self.talks_finished = 0

    def _record(self, name: str, *args: object) -> None:
        self.calls.append((round(self.clock.now() - self.start, 6), name, args))
        if name in self.fail:
            raise self.fail[name]

    async def talk(self, duration: float) -> None:
        self._record("talk", duration)
        try:
            if self.talk_forever:
                await asyncio.Event().wait()
            elif self.talk_seconds:
                await asyncio.sleep(self.talk_seconds)
        except asyncio.CancelledError:
            self.talk_cancelled = True
            raise
        self.talks_finished += 1

    async def set_status(self, name: str) -> None:
        self._record("status", name)

    async def raise_emergency(self, *, peril: bool = False) -> None:
        self._record("peril" if peril else "emergency")

    async def cancel_emergency(self) -> None:
        self._record("cancel")

    async def send_text(self, to: str, words: str) -> None:
        self._record("text", to, words)

    async def select(self, channel_name: str) -> None:
        self._record("select", channel_name)

    async def call(self, step: CallStep) -> None:
        self._record("call", step.user, step.duration, step.half, step.emergency, step.ring)

    async def call_action(self, action: str) -> None:
        self._record(action)

    async def broadcast(self, duration: float, channels: Sequence[str]) -> None:
        self._record("broadcast", duration, tuple(channels))


async def test_steps_run_at_their_times() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    executed = await run_script(parse_script(EXAMPLE), radio, clock)
    assert radio.calls == [
        (0.5, "talk", (4.0,)),
        (5.0, "status", ("on_scene",)),
        (7.0, "emergency", ()),
        (8.0, "text", ("channel", "on scene now")),
        (12.0, "cancel", ()),
        (13.0, "select", ("patrol",)),
    ]
    assert [(e.started, type(e.step).__name__) for e in executed][-1] == (15.0, "QuitStep")
    # Absolute times, not accumulated sleeps of the step gaps: 0.5, 4.5, 2, 1, 4, 1, 2.
    assert clock.sleeps == pytest.approx([0.5, 4.5, 2.0, 1.0, 4.0, 1.0, 2.0])


async def test_call_steps_run_at_their_times() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    script = "call 1 bob for 20 half; hangup 4; answer 5; refuse 6; quit 7"
    await run_script(parse_script(script), radio, clock)
    assert radio.calls == [
        (1.0, "call", ("bob", 20.0, True, False, False)),
        (4.0, "hangup", ()),
        (5.0, "answer", ()),
        (6.0, "refuse", ()),
    ]


async def test_a_broadcast_runs_at_its_time_with_its_channels() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    await run_script(parse_script("broadcast 2 3 patrol,traffic; status busy 2.5"), radio, clock)
    assert radio.calls == [
        (2.0, "broadcast", (3.0, ("patrol", "traffic"))),
        (2.5, "status", ("busy",)),
    ]


async def test_quit_cancels_a_talk_that_is_still_running() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    radio.talk_forever = True
    await run_script(parse_script("talk 1 60; status busy 2; quit 3"), radio, clock)
    assert [name for _, name, _ in radio.calls] == ["talk", "status"]
    assert radio.talk_cancelled


async def test_without_quit_the_script_ends_when_the_last_talk_does() -> None:
    clock = LoopClock()
    radio = RecordingRadio(clock, clock.now())
    radio.talk_seconds = 0.03
    await run_script(parse_script("talk 0 0.03; status busy 0.01"), radio, clock)
    assert radio.talks_finished == 1
    assert not radio.talk_cancelled


async def test_real_clock_runs_each_step_in_order_and_never_early() -> None:
    clock = LoopClock()
    start = clock.now()
    radio = RecordingRadio(clock, start)
    executed = await run_script(
        parse_script("status busy 0; select north 0.02; text 0.04 bob hi; quit 0.05"), radio, clock
    )
    # Never early (a load can only make a step late); 1 us for float rounding of the loop's
    # clock. How late at most is a bench (tests/bench/test_timing_goals.py); that lateness does
    # not add up is test_steps_run_at_their_times (absolute times, not accumulated sleeps).
    for record in executed:
        assert record.step.at <= record.started + 1e-6, record
    assert [type(e.step).__name__ for e in executed] == [
        "StatusStep",
        "SelectStep",
        "TextStep",
        "QuitStep",
    ]
    assert [name for _, name, _ in radio.calls] == ["status", "select", "text"]


async def test_a_failing_step_is_reported_and_the_script_goes_on() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    radio.fail["select"] = LookupError("no channel 'north'")
    errors: list[tuple[Step, Exception]] = []
    await run_script(
        parse_script("select north 1; status busy 2"),
        radio,
        clock,
        on_error=lambda step, exc: errors.append((step, exc)),
    )
    assert [(step, str(exc)) for step, exc in errors] == [
        (SelectStep(1.0, "north"), "no channel 'north'")
    ]
    assert radio.calls[-1] == (2.0, "status", ("busy",))


async def test_without_on_error_a_failing_step_stops_the_script() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    radio.fail["select"] = LookupError("no channel 'north'")
    with pytest.raises(LookupError):
        await run_script(parse_script("select north 1; status busy 2"), radio, clock)
    assert [name for _, name, _ in radio.calls] == ["select"]


async def test_a_failed_background_talk_surfaces_at_the_next_step() -> None:
    clock = SteppedClock()
    radio = RecordingRadio(clock, clock.t)
    radio.fail["talk"] = ConnectionError("not connected")
    with pytest.raises(ConnectionError):
        await run_script(parse_script("talk 1 2; status busy 5; status available 6"), radio, clock)
    assert [name for _, name, _ in radio.calls] == ["talk"]
