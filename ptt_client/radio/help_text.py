"""What ``ptt-radio --help`` says after the flags: the ``--script`` steps and the keys, made
from the tables that define them (:data:`ptt_client.script.SCRIPT_STEPS`,
:data:`ptt_client.radio.keys.KEY_BINDINGS`), so the help cannot drift from what they do.
"""

from __future__ import annotations

import textwrap

from ptt_client.radio.errors import EXIT_OK, EXIT_RUNTIME, EXIT_STARTUP, EXIT_UNREACHABLE
from ptt_client.radio.keys import KEY_BINDINGS
from ptt_client.script import SCRIPT_EXAMPLE, SCRIPT_STEPS

__all__ = ["epilog"]

_WIDTH = 94


_NAME_WIDTH = 30
"""A longer name (the ``call`` step's) goes on a line of its own, above its text."""


def _rows(rows: list[tuple[str, str]]) -> list[str]:
    column = max(len(name) for name, _ in rows if len(name) <= _NAME_WIDTH) + 2
    lines = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, _WIDTH - column - 2) or [""]
        if len(name) > _NAME_WIDTH:
            lines.append(f"  {name}")
            lines.extend(" " * (column + 2) + more for more in wrapped)
            continue
        lines.append(f"  {name.ljust(column)}{wrapped[0]}")
        lines.extend(" " * (column + 2) + more for more in wrapped[1:])
    return lines


def _paragraph(text: str) -> list[str]:
    return textwrap.wrap(text, 88, subsequent_indent="  ", break_on_hyphens=False)


def epilog() -> str:
    """The text under the flags in ``ptt-radio --help``."""
    return "\n".join(
        [
            *_paragraph(
                "script steps (--script 'STEP; STEP; ...', defined in ptt_client/script.py):"
                " times are seconds from when the radio joined its channel; quote a text"
                " with spaces. A radio still connecting honours quit AT, from its start."
            ),
            *_rows([(step.usage, step.help) for step in SCRIPT_STEPS]),
            f'  e.g. --script "{SCRIPT_EXAMPLE}"',  # one line, to copy
            "",
            "keys (without --script, on a terminal):",
            *_rows([(binding.label, binding.help) for binding in KEY_BINDINGS]),
            "",
            *_paragraph(
                "output: one line per event worth knowing, after the time: the link, the"
                " media path, the floor granted, queued or denied, who talks and when they"
                " stop, texts, emergencies, key changes, private calls (ringing, connected end"
                " to end direct or through TURN, ended with the reason). --json: one JSON"
                " object per event"
                ' instead, with "t" (Unix time), "event" (its name) and its fields, bytes'
                " as hex; only what stops the radio from starting goes to stderr."
            ),
            "",
            *_paragraph(
                f"exit status: {EXIT_OK} done; {EXIT_RUNTIME} stopped before joining the"
                f" channel; {EXIT_STARTUP} bad arguments, credential or passphrase, refused"
                f" login or unknown channel; {EXIT_UNREACHABLE} stopped (the script's quit,"
                " a signal) before the server could be reached."
            ),
        ]
    )
