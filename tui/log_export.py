"""Where ``l`` writes the event log: the console's state directory, never the current one.

The default follows the XDG base directory spec: ``$XDG_STATE_HOME/fieldradio``, or
``~/.local/state/fieldradio`` when the variable is unset (logs are state, not data to
back up or configuration). ``ptt-dispatch --export-dir DIR`` chooses another directory.
"""

from __future__ import annotations

import time
from pathlib import Path

import platformdirs

from tui.state import ConsoleState


def default_log_dir() -> Path:
    """``$XDG_STATE_HOME/fieldradio``, else ``~/.local/state/fieldradio`` (absolute)."""
    # platformdirs, as the relay's and the authority's data directories: it ignores a
    # relative XDG_STATE_HOME, as the XDG spec says.
    return platformdirs.user_state_path("fieldradio").absolute()


def write_log_csv(state: ConsoleState, directory: Path, now: float) -> Path:
    """Write the event log as ``dispatch-log-YYYYmmdd-HHMMSS.csv`` in ``directory`` (made if
    missing); returns the file's absolute path. Raises ``OSError``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    directory = directory.expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"dispatch-log-{stamp}.csv"
    path.write_text(state.to_csv(), encoding="utf-8", newline="")
    return path
