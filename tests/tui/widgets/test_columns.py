"""Column widths that follow the content and the room (tui.widgets.columns)."""

from __future__ import annotations

from tui.widgets.columns import ColumnSpec, fit_columns

SPECS = (
    ColumnSpec("user", "User", keep=7, min_width=10),
    ColumnSpec("status", "Status", keep=6, min_width=9),
    ColumnSpec("channel", "Channel", keep=4, min_width=6),
    ColumnSpec("heard", "Heard", keep=5),
    ColumnSpec("location", "Location", keep=3),
)
WIDE = {"user": 23, "status": 9, "channel": 14, "heard": 3, "location": 17}


def test_every_column_shows_in_full_when_the_row_fits() -> None:
    # 23 + 9 + 14 + 5 (the header "Heard") + 17, and one cell of padding each side.
    assert fit_columns(SPECS, WIDE, 68 + 10) == {
        "user": 23,
        "status": 9,
        "channel": 14,
        "heard": 5,
        "location": 17,
    }


def test_the_least_important_columns_give_way_first() -> None:
    # One cell short: the location goes (it is no use cut), nothing else changes.
    assert fit_columns(SPECS, WIDE, 77) == {"user": 23, "status": 9, "channel": 14, "heard": 5}
    # Narrower: the channel is cut to its minimum before "Heard" goes; once it has gone,
    # the channel gets the room back.
    assert fit_columns(SPECS, WIDE, 50) == {"user": 23, "status": 9, "channel": 12}
    # Narrower still: the name is cut last, never below its minimum.
    assert fit_columns(SPECS, WIDE, 20) == {"user": 10, "status": 9, "channel": 6}


def test_not_laid_out_yet_shows_natural_widths() -> None:
    assert fit_columns(SPECS, {}, 0) == {
        "user": 4,
        "status": 6,
        "channel": 7,
        "heard": 5,
        "location": 8,
    }
