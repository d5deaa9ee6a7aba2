"""What the floor-control tests share: short names for the priorities and causes, a
:class:`FloorControl` from keyword config, and a run of media from the holder.
"""

from ptt_protocol.floor import (
    DenyCause,
    FloorConfig,
    FloorControl,
    Priority,
    RevokeCause,
)

OFFICER = Priority.OFFICER
DISPATCHER = Priority.DISPATCHER
PERIL = Priority.IMMINENT_PERIL
EMERGENCY = Priority.EMERGENCY

ANOTHER_HAS_PERMISSION = DenyCause.ANOTHER_MCPTT_CLIENT_HAS_PERMISSION
TOO_LONG = RevokeCause.MEDIA_BURST_TOO_LONG
PRE_EMPTED = RevokeCause.MEDIA_BURST_PRE_EMPTED


def floor(**config: object) -> FloorControl:
    """A channel's floor control with ``config`` overriding the defaults."""
    return FloorControl(FloorConfig(**config))  # type: ignore[arg-type]


def talk(fc: FloorControl, user: str, start: float, end: float, every: float = 1.0) -> None:
    """Media from ``user`` every ``every`` seconds in [start, end]; expects no events."""
    t = start
    while t <= end:
        assert fc.media_received(user, t) == []
        t += every
