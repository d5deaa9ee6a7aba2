"""The event log: bounded, repeats counted, exported as CSV at the end of a shift."""

from __future__ import annotations

import csv
import io
import time
from collections import deque
from typing import Final

from tui.state.rows import Changed, LogEntry

LOG_LIMIT: Final = 5000
"""Event log entries kept (the oldest are dropped first); export before a long shift ends."""

_CSV_FORMULA_PREFIXES: Final = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str) -> str:
    # OWASP "CSV injection": a spreadsheet runs a cell that starts with a formula
    # character; names and texts come from the network, so defuse them.
    return "'" + value if value.startswith(_CSV_FORMULA_PREFIXES) else value


class LogState:
    """The event log of :class:`tui.state.ConsoleState`; every handler writes to it with :meth:`note`."""

    def __init__(self, log_limit: int = LOG_LIMIT) -> None:
        self.log: deque[LogEntry] = deque(maxlen=log_limit)
        self._log_seq = 0

    def note(self, kind: str, text: str, now: float) -> Changed:
        """Add an event log line (an identical repeat of the last line bumps its count)."""
        last = self.log[-1] if self.log else None
        if last is not None and last.kind == kind and last.text == text:
            last.count += 1
            last.at = now
        else:
            self._log_seq += 1
            self.log.append(LogEntry(now, kind, text, seq=self._log_seq))
        return Changed.LOG

    def to_csv(self) -> str:
        """The event log as CSV: ``time_utc, unix_time, kind, text, count`` (RFC 4180)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["time_utc", "unix_time", "kind", "text", "count"])
        for entry in self.log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.at))
            writer.writerow(
                [stamp, f"{entry.at:.3f}", entry.kind, _csv_cell(entry.text), entry.count]
            )
        return out.getvalue()
