"""A fixed, deterministic shift for the console's screen tests: what the client would report."""

from __future__ import annotations

from ptt_client import events
from ptt_protocol import control
from tui.state import LocationText, MembersKnown

T0 = 1_767_258_000.0
"""2026-01-01 09:00:00 UTC: every event of the story happens at T0 + a few seconds."""
NOW = T0 + 60.0
"""The console's clock while the screen is captured."""
ALERT = bytes.fromhex("a1" * 16)


def presence(
    user: str, name: str, status: str, channel: int | None, seen: float, online: bool = True
) -> control.PresenceUpdate:
    return control.PresenceUpdate(
        user_id=user,
        display_name=name,
        online=online,
        status=status,  # type: ignore[arg-type]
        channel_id=channel,
        last_seen=seen,
    )


def shift() -> list[tuple[object, float]]:
    """(event, time) pairs: three channels, five officers, a talker, an emergency, texts."""
    story = [
        (events.Connected("disp", 7, False), T0),
        (events.MediaPath("udp"), T0),
        (
            control.ChannelList(
                channels=(
                    control.ChannelInfo(channel_id=1, name="patrol"),
                    control.ChannelInfo(channel_id=2, name="traffic"),
                    control.ChannelInfo(channel_id=3, name="north-district"),
                )
            ),
            T0,
        ),
        (MembersKnown(1, ("disp", "alice", "bob", "carol"), 1), T0),
        (MembersKnown(2, ("disp", "dave", "erin"), 1), T0),
        (MembersKnown(3, ("disp", "alice", "erin"), 1), T0),
        (control.Affiliated(channel_id=1, name="patrol"), T0 + 1),
        (control.Affiliated(channel_id=2, name="traffic"), T0 + 1),
        (control.Affiliated(channel_id=3, name="north-district"), T0 + 1),
        (presence("alice", "Alice Adams", "on_scene", 1, T0 + 2), T0 + 2),
        (presence("bob", "Bob Brown", "available", 1, T0 + 3), T0 + 3),
        (presence("carol", "Carol Clark", "offline", None, T0 - 3600, online=False), T0 + 3),
        (presence("dave", "Dave Dunn", "en_route", 2, T0 + 4), T0 + 4),
        (presence("erin", "Erin Evans", "busy", 3, T0 + 5), T0 + 5),
        (LocationText("alice", "52.37022, 4.89517"), T0 + 6),
        (
            control.FloorTaken(
                channel_id=1,
                user_id="bob",
                display_name="Bob Brown",
                priority=1,
                burst_id=41,
                since=T0 + 48,
            ),
            T0 + 48,
        ),
        (events.TalkerVerified(1, "bob", "Bob Brown", 41), T0 + 49),
        (
            control.FloorTaken(
                channel_id=2,
                user_id="dave",
                display_name="Dave Dunn",
                priority=1,
                burst_id=9,
                since=T0 + 57,
            ),
            T0 + 57,
        ),
        (
            control.EmergencyAlert(alert_id=ALERT, user_id="erin", channel_id=3, raised_at=T0 + 30),
            T0 + 30,
        ),
        (LocationText("erin", "52.09074, 5.12142", alert_id=ALERT), T0 + 31),
        (events.TextReceived(b"t" * 16, "alice", 1, "on scene, two vehicles", T0 + 20), T0 + 20),
        (events.TextReceived(b"u" * 16, "dave", None, "need a tow truck", T0 + 25), T0 + 25),
    ]
    return sorted(story, key=lambda item: item[1])
