"""The event log: repeats counted, bounded, and the CSV export."""

from __future__ import annotations

import csv
import io

from ptt_client import events
from tests.tui.state.samples import T0, presence
from tui.state import ConsoleState, Note


def test_log_coalesces_repeats_and_is_bounded() -> None:
    state = ConsoleState("disp", log_limit=10)
    for _ in range(5):
        state.apply(events.VoiceRejected(0, "malformed inner frame"), T0)
    assert len(state.log) == 1 and state.log[0].count == 5
    for i in range(20):
        state.apply(Note("note", f"n{i}"), T0 + i)
    assert len(state.log) == 10
    assert state.log[0].text == "n10"


def test_csv_export() -> None:
    state = ConsoleState("disp")
    state.apply(Note("note", 'said "hi", then left'), 0.0)
    state.apply(events.TextReceived(b"m" * 16, "mallory", None, "=HYPERLINK(1)", 1.5), 1.5)
    state.apply(presence("mallory", "@evil"), 2.0)
    rows = list(csv.reader(io.StringIO(state.to_csv())))
    assert rows[0] == ["time_utc", "unix_time", "kind", "text", "count"]
    assert rows[1] == ["1970-01-01T00:00:00Z", "0.000", "note", 'said "hi", then left', "1"]
    assert rows[2][0] == "1970-01-01T00:00:01Z"
    assert rows[2][3] == "mallory -> you: =HYPERLINK(1)"
    assert len(rows) == 3


def test_csv_defuses_formula_cells() -> None:
    state = ConsoleState("disp")
    state.apply(Note("note", "=1+1"), 0.0)
    state.apply(Note("note", "-2"), 0.0)
    rows = list(csv.reader(io.StringIO(state.to_csv())))
    assert [r[3] for r in rows[1:]] == ["'=1+1", "'-2"]
