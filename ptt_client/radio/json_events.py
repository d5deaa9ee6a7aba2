"""The ``--json`` event stream of ``ptt-radio``: one JSON object per line on stdout per
:class:`~ptt_client.radio.notes.Note`, and nothing else on stdout.

Every object has ``"t"`` (Unix time, seconds, a float) and ``"event"`` (the note's name),
then the note's fields under their own names; bytes are lowercase hex, tuples are lists.
For example::

    {"t": 1767225600.25, "event": "floor_taken", "channel": "patrol", "talker": "bob",
     "name": "Bob Brown", "priority": 1, "emergency": false}

The names and their fields are those the radio's notes carry (``ptt_client.radio.
session_notes``, ``display``, ``trust_notes`` and ``app``); a field is only ever added.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from ptt_client.radio.notes import Note

__all__ = ["encode_note", "json_value"]


def json_value(value: object) -> object:
    """``value`` as JSON can hold it: bytes as hex, sequences as lists, mappings as objects."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN nor infinity
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [json_value(item) for item in items]
    return str(value)  # an enum or a path: its text, never a failure to report an event


def encode_note(note: Note, t: float) -> str:
    """One line of the stream (without the newline)."""
    obj: dict[str, object] = {"t": round(t, 3), "event": note.event}
    obj.update((name, json_value(value)) for name, value in note.fields.items())
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))
