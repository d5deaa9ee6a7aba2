"""Column widths that follow the content and the room a table has (pure: no Textual).

A table's columns used to be sized once, from their headers, so a talker that appeared
later showed as "Off…" in a 160-column terminal. :func:`fit_columns` sizes every column to
its widest cell; when the whole row does not fit, the least important columns give way
first: an optional column (a location, an age) is hidden, a necessary one (a name) is cut
down to its ``min_width`` with an ellipsis, one column at a time in order of importance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a fitted table."""

    key: str
    label: str
    keep: int
    """Importance: when the row is too wide, lower ``keep`` gives way first."""
    min_width: int = 0
    """Cells this column keeps when cut; 0: the column may be hidden instead."""


def fit_columns(
    specs: Sequence[ColumnSpec], natural: Mapping[str, int], available: int, padding: int = 1
) -> dict[str, int]:
    """Width of each shown column (in ``specs`` order; hidden columns are left out).

    ``natural``: the widest cell of each column (labels count); ``available``: the cells the
    table has for a row; ``padding``: cells on each side of every column. ``available <= 0``
    (not laid out yet) shows every column at its natural width.
    """
    widths = {spec.key: max(natural.get(spec.key, 0), len(spec.label), 1) for spec in specs}
    if available <= 0:
        return widths

    def over() -> int:
        return sum(width + 2 * padding for width in widths.values()) - available

    for spec in sorted(specs, key=lambda s: s.keep):
        excess = over()
        if excess <= 0:
            break
        if spec.min_width == 0:
            del widths[spec.key]
        else:
            widths[spec.key] -= min(excess, max(0, widths[spec.key] - spec.min_width))
    # A column hidden after another was cut leaves room: the cut ones get it back, most
    # important first.
    for spec in sorted(specs, key=lambda s: -s.keep):
        room = -over()
        if room <= 0:
            break
        if spec.key in widths:
            full = max(natural.get(spec.key, 0), len(spec.label), 1)
            widths[spec.key] += min(room, full - widths[spec.key])
    return {spec.key: widths[spec.key] for spec in specs if spec.key in widths}
