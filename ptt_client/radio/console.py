"""Where the radio writes: :class:`Console` (a timestamped line per note, and the status line
redrawn in place on a live terminal) and :class:`JsonConsole` (``--json``: one JSON object
per note, nothing else).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import TextIO

from ptt_client.radio.json_events import encode_note
from ptt_client.radio.notes import Note, note

__all__ = ["Console", "JsonConsole"]


class Console:
    """Whole lines always, ``HH:MM:SS text``; the status line only on a live terminal."""

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._status = ""

    def note(self, told: Note) -> None:
        """Print one note as a line."""
        self._write_line(told.text)

    def line(self, text: str) -> None:
        """Print a line that is no event of its own (the key help)."""
        self.note(note("notice", text, text=text))

    def _write_line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(f"{stamp} {text}\n")
        if self.live and self._status:
            self.out.write(self._status)
        self.out.flush()

    def status(self, text: str) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size((100, 24)).columns
        self._status = text[: max(10, width - 1)]
        self.out.write("\r\x1b[K" + self._status)
        self.out.flush()

    def finish(self) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()


class JsonConsole(Console):
    """``--json``: each note is one JSON object on a line of ``out``; no status line."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.time) -> None:
        super().__init__(out, live=False)
        self._clock = clock

    def note(self, told: Note) -> None:
        self.out.write(encode_note(told, self._clock()) + "\n")
        self.out.flush()
