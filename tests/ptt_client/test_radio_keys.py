"""``ptt-radio``'s keypad and status line: pure functions of keys and state, no radio running."""

from __future__ import annotations

import pytest

from ptt_client.radio import StatusView, status_line
from ptt_client.radio.keys import (
    CALL_PROMPT,
    EMERGENCY_CALL_PROMPT,
    CallKey,
    CancelEmergency,
    Compose,
    ComposeCancelled,
    CycleStatus,
    Keypad,
    PlaceCall,
    Quit,
    RaiseEmergency,
    SelectChannel,
    SendText,
    TogglePtt,
)

# --- keys and the status line ----------------------------------------------------------------


def test_keypad_commands() -> None:
    keypad = Keypad()
    presses = [keypad.press(k) for k in [" ", "3", "0", "s", "e", "c", "x", "Q"]]
    assert presses == [
        TogglePtt(),
        SelectChannel(3),
        None,
        CycleStatus(),
        RaiseEmergency(),
        CancelEmergency(),
        None,
        Quit(),
    ]


def test_keypad_composes_a_text() -> None:
    keypad = Keypad()
    assert keypad.press("m") == Compose("")
    typed = [keypad.press(k) for k in "on scenx"]
    assert typed[-1] == Compose("on scenx")
    assert keypad.press("\x7f") == Compose("on scen")
    assert keypad.press("\x01") is None  # control characters are not typed
    assert keypad.press("q") == Compose("on scenq")  # q is a letter while composing
    assert keypad.press("\x7f") == Compose("on scen")
    assert keypad.press("e") == Compose("on scene")
    assert keypad.press("\r") == SendText("on scene")
    assert keypad.composing is None
    assert keypad.press("q") == Quit()


def test_keypad_escape_or_empty_enter_cancels() -> None:
    keypad = Keypad()
    keypad.press("m")
    keypad.press("a")
    assert keypad.press("\x1b") == ComposeCancelled()
    keypad.press("m")
    keypad.press(" ")
    assert keypad.press("\n") == ComposeCancelled()
    assert keypad.press(" ") == TogglePtt()


def test_keypad_places_calls_and_acts_on_them() -> None:
    """d and u prompt for whom to call (a text prompt: letters are typed, not keys)."""
    keypad = Keypad()
    assert keypad.press("d") == Compose("", CALL_PROMPT)
    typed = [keypad.press(k) for k in "bob half"]
    assert typed[-1] == Compose("bob half", CALL_PROMPT)
    assert keypad.press("\r") == PlaceCall("bob half")
    assert keypad.press("U") == Compose("", EMERGENCY_CALL_PROMPT)
    keypad.press("c")
    assert keypad.press("\n") == PlaceCall("c", emergency=True)
    assert [keypad.press(k) for k in "arh"] == [
        CallKey("answer"),
        CallKey("refuse"),
        CallKey("hangup"),
    ]
    assert keypad.press("m") == Compose("")
    keypad.press("x")
    assert keypad.press("\r") == SendText("x")  # the text prompt is a text prompt again


@pytest.mark.parametrize(
    ("view", "line"),
    [
        (StatusView("patrol", True, "idle"), "patrol | idle | udp | loss - | available"),
        (
            StatusView(
                "patrol",
                True,
                "taken",
                talker="Bob Brown",
                verified=True,
                loss_percent=1.26,
                status="on_scene",
            ),
            "patrol | RX Bob Brown verified | udp | loss 1.3% | on_scene",
        ),
        (
            StatusView("patrol", True, "taken", talker="carol", heard_on="north", media="tunnel"),
            "patrol | RX carol on north | tunnel | loss - | available",
        ),
        (
            StatusView("patrol", True, "taken", talker="Dispatch One", broadcast=True),
            "patrol | RX BROADCAST Dispatch One | udp | loss - | available",
        ),
        (
            StatusView("patrol", True, "granted", transmitting=True),
            "patrol | TX | udp | loss - | available",
        ),
        (
            StatusView("patrol", True, "queued", queue_position=2),
            "patrol | queued #2 | udp | loss - | available",
        ),
        (
            StatusView("patrol", False, "idle", emergency=True),
            "EMERGENCY | patrol | offline, reconnecting | udp | loss - | available",
        ),
    ],
)
def test_status_line(view: StatusView, line: str) -> None:
    assert status_line(view) == line
