"""Sample events for the console model's tests, and a console with two channels."""

from __future__ import annotations

from ptt_protocol import control
from tui.state import ConsoleState, MembersKnown

T0 = 1_800_000_000.0
A1 = b"\x01" * 16
A2 = b"\x02" * 16


def channel_state() -> ConsoleState:
    state = ConsoleState("disp", "Dispatch One")
    state.apply(
        control.ChannelList(
            channels=(
                control.ChannelInfo(channel_id=1, name="patrol"),
                control.ChannelInfo(channel_id=2, name="Traffic"),
            )
        ),
        T0,
    )
    state.apply(MembersKnown(1, ("disp", "alice", "bob"), 1), T0)
    return state


def presence(
    user: str, name: str, *, online: bool = True, status: str = "available", **kw: object
) -> control.PresenceUpdate:
    return control.PresenceUpdate(
        user_id=user,
        display_name=name,
        online=online,
        status=status,  # type: ignore[arg-type]
        last_seen=T0,
        **kw,  # type: ignore[arg-type]
    )


def alert(
    alert_id: bytes = A1, user: str = "alice", channel: int = 1, at: float = T0
) -> control.EmergencyAlert:
    return control.EmergencyAlert(alert_id=alert_id, user_id=user, channel_id=channel, raised_at=at)
