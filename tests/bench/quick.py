"""Running a bench the way a person does, for the tests of its report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[2]


def quick_report(module: str, timeout: float) -> dict[str, Any]:
    """The JSON object ``python -m MODULE --quick --json`` prints, run from the repository root
    in its own process (so the bench measures nothing of the test run)."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--json"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result
