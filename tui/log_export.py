"""Where ``l`` writes the event log: the console's state directory, never the current one.

The default follows the XDG base directory spec: ``$XDG_STATE_HOME/fieldradio``, or
``~/.local/state/fieldradio`` when the variable is unset (logs are state, not data to
back up or configuration). ``ptt-dispatch --export-dir DIR`` chooses another directory.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tui.state import ConsoleState


def default_log_dir() -> Path:
    """``$XDG_STATE_HOME/fieldradio``, else ``~/.local/state/fieldradio`` (absolute)."""
    state_home = os.environ.get("XDG_STATE_HOME", "")
    # The spec: a relative value is invalid and is ignored.
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "fieldradio"


def write_log_csv(state: ConsoleState, directory: Path, now: float) -> Path:
    """Write the event log as ``dispatch-log-YYYYmmdd-HHMMSS.csv`` in ``directory`` (made if
    missing); returns the file's absolute path. Raises ``OSError``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    directory = directory.expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"dispatch-log-{stamp}.csv"
    path.write_text(state.to_csv(), encoding="utf-8", newline="")
    return path
