"""What the radio tells its officer: :class:`Note`, one event worth knowing, as a name that
scripts match (``floor_taken``), the line a person reads, and the event's fields.

The plain display prints :attr:`Note.text` after a timestamp; ``--json`` prints the name
and the fields instead (:mod:`ptt_client.radio.json_events`), so both say the same things.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["RESERVED_FIELDS", "Note", "note"]

RESERVED_FIELDS: Final = frozenset({"t", "event"})
"""Keys every JSON event has (time and name): no field may be called so."""


@dataclass(frozen=True)
class Note:
    """One event worth telling the officer."""

    event: str
    """A short stable name, ``snake_case``: ``floor_granted``, ``text``, ``unreachable``."""
    text: str
    """The line a person reads (without the timestamp)."""
    fields: Mapping[str, object] = field(default_factory=dict)
    """What the event says, for scripts: str, int, float, bool, None, bytes, or sequences."""

    def __post_init__(self) -> None:
        clash = RESERVED_FIELDS & set(self.fields)
        if clash:
            raise ValueError(f"note {self.event!r}: field name {sorted(clash)[0]!r} is reserved")


def note(event: str, text: str, /, **fields: object) -> Note:
    """``Note(event, text, fields)`` with the fields as keywords."""
    return Note(event, text, fields)
