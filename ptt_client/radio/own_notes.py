"""The notes for what the officer's own radio does: joining, talking, the status, an
emergency, a failed step. :class:`~ptt_client.radio.app.Radio` tells them as it acts; what
it hears is :mod:`~ptt_client.radio.session_notes` and :mod:`~ptt_client.radio.display`.
"""

from __future__ import annotations

from ptt_client.radio.notes import Note, note
from ptt_client.voice import TalkResult

__all__ = [
    "emergency_raised",
    "error",
    "no_key",
    "ready",
    "script_error",
    "stopped",
    "talk_ended",
]


def ready(user: str, channel: str, choices: list[str]) -> Note:
    """Joined: the channel talked on and the digit keys' channels."""
    menu = "  ".join(f"{n}:{name}" for n, name in enumerate(choices, 1))
    return note(
        "ready", f"{user} on {channel!r}: {menu}", user=user, channel=channel, channels=choices
    )


def no_key(channel: str) -> Note:
    return note(
        "no_key",
        f"no key for {channel!r} yet: you will hear and talk once a dispatcher sends it",
        channel=channel,
    )


def talk_ended(channel: str, result: TalkResult, frame_ms: int, *, ptt_still_on: bool) -> Note:
    """A press is over: the floor released after talking (``floor_released``), or why not."""
    if result.outcome == "granted":
        seconds = result.frames_sent * frame_ms / 1000
        return note(
            "floor_released",
            f"released the floor on {channel} after {seconds:.1f} s",
            channel=channel,
            seconds=round(seconds, 2),
            frames=result.frames_sent,
        )
    detail = f" ({result.cause})" if result.cause else ""
    if ptt_still_on:
        detail += " - PTT still on: space turns it off"
    return note(
        "talk_ended",
        f"talk: {result.outcome}{detail}",
        channel=channel,
        outcome=result.outcome,
        cause=result.cause,
    )


def broadcast_ended(channels: str, result: TalkResult) -> Note:
    """A broadcast group call is over (``broadcast_ended``): to which channels it went."""
    outcome = result.broadcast
    granted = list(outcome.granted) if outcome is not None else []
    refused = {str(c): cause for c, cause in outcome.denied.items()} if outcome else {}
    detail = f" ({result.cause})" if result.cause else ""
    return note(
        "broadcast_ended",
        f"BROADCAST to {channels}: {result.outcome}{detail}, {result.frames_sent} frames"
        f" on {len(granted)} channel(s)",
        channels=channels,
        outcome=result.outcome,
        frames=result.frames_sent,
        granted=granted,
        refused=refused,
        broadcast=True,
    )


def emergency_raised(
    channel: str, lat: float | None, lon: float | None, talk_s: float, *, peril: bool = False
) -> Note:
    where = f" at {lat:.5f},{lon:.5f}" if lat is not None and lon is not None else ""
    what = "IMMINENT PERIL" if peril else "EMERGENCY"
    return note(
        "imminent_peril_raised" if peril else "emergency_raised",
        f"{what} raised{where}: talking for {talk_s:g} s",
        channel=channel,
        lat=lat,
        lon=lon,
    )


def error(text: str, exc: BaseException) -> Note:
    """Something the officer asked for failed: ``text`` says what, ``exc`` why."""
    return note("error", f"{text}: {exc}", error=str(exc))


def script_error(step: object, at: float, exc: BaseException) -> Note:
    what = type(step).__name__
    return note(
        "script_error",
        f"script: {what} at {at:g} s failed: {exc}",
        step=what,
        at=at,
        error=str(exc),
    )


def stopped(reason: str, code: int) -> Note:
    """The radio stops (the last note): why, and the exit status it leaves with."""
    return note("stopped", reason, reason=reason, code=code)
