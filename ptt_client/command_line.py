"""What every Fieldradio command line does the same way: usage errors and environment secrets.

``ptt-radio``, ``ptt-sim`` and ``ptt-admin`` all print a mistake as one line on stderr and
return exit status 2, never argparse's usage block and ``SystemExit``; and all read
passphrases from an environment variable named on the command line, never from the command
line itself (other local users can read that in ``ps``). ``ptt_admin`` may import this
module: it imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import NoReturn


class UsageError(Exception):
    """A mistake argparse found on the command line: ``str()`` is argparse's one-line message,
    :attr:`prog` the (sub)command that refused it (for a pointer to its ``--help``)."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` instead of printing usage and exiting, so the
    program prints one line and returns its own exit status. Subparsers are of this class
    too (argparse makes them of the parent's class)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog)


def env_secret(
    var: str | None,
    option: str,
    error: Callable[[str], Exception],
    *,
    allow_empty: bool = False,
    environ: Mapping[str, str] = os.environ,
) -> str | None:
    """The secret in environment variable ``var`` (named by flag ``option``), or ``None`` when
    no variable was named. A named variable that is not set (or empty, unless
    ``allow_empty``) raises ``error(message)``: the program's own one-line error."""
    if var is None:
        return None
    value = environ.get(var)
    if value is None:
        raise error(f"{option} {var}: that environment variable is not set")
    if not value and not allow_empty:
        raise error(f"{option} {var}: that environment variable is empty")
    return value
