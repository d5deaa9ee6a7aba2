"""How the console writes times, ages, names and states (Rich ``Text``, never markup).

Names and texts come from the network: they are put into ``Text`` objects as
plain strings, so a display name like ``[red]x`` shows as typed.
"""

from __future__ import annotations

import time

from rich.text import Text

from ptt_protocol import control

STATUS_STYLES = {
    control.STATUS_AVAILABLE: "green",
    control.STATUS_BUSY: "yellow",
    control.STATUS_EN_ROUTE: "cyan",
    control.STATUS_ON_SCENE: "magenta",
    control.STATUS_EMERGENCY: "bold white on red",
    control.STATUS_OFFLINE: "dim",
}


def clock_time(at: float) -> str:
    """``14:03:09`` in local time."""
    return time.strftime("%H:%M:%S", time.localtime(at))


def age(at: float | None, now: float) -> str:
    """How long ago: ``4s``, ``12m``, ``3h``, ``2d``; empty if never."""
    if at is None or at <= 0:
        return ""
    seconds = max(0, int(now - at))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def status_text(status: str, online: bool) -> Text:
    shown = status if online or status == control.STATUS_EMERGENCY else control.STATUS_OFFLINE
    return Text(shown.replace("_", " "), style=STATUS_STYLES.get(shown, ""))


def plain(value: str, style: str = "") -> Text:
    """Network text as a cell: no markup, no control characters."""
    cleaned = "".join(c if c.isprintable() else " " for c in value)
    return Text(cleaned, style=style, no_wrap=True, overflow="ellipsis")
