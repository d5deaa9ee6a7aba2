"""How ``ptt-radio`` fails: :class:`RadioError` (one line saying why and what to do) and the
exit statuses."""

from __future__ import annotations

from typing import Final

EXIT_OK: Final = 0
EXIT_RUNTIME: Final = 1
"""Stopped before joining the channel (the server was reached)."""
EXIT_STARTUP: Final = 2
"""Bad arguments, credential, passphrase, refused login or unknown channel (as argparse)."""
EXIT_UNREACHABLE: Final = 3
"""Stopped (the script's ``quit``, SIGINT, SIGTERM) before the server could be reached."""


class RadioError(Exception):
    """The radio cannot start or go on; the message (one line) says why and what to do."""
