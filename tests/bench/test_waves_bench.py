"""``python -m bench.waves --quick --json`` runs a real relay process and reports its memory.

Checks that every figure is there and agrees with the counts it comes from; the growth goal
is for the full run (the quick one is too short to show a leak).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.waves import KINDS, QUICK

REPOSITORY = Path(__file__).resolve().parents[2]


def test_quick_waves_report() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.waves", "--quick", "--json"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout)
    assert 10 < report["rss_baseline_mb"] < report["rss_peak_mb"] + 1
    assert report["rss_after_connection_waves_mb"] == report["rss_per_wave_mb"][-1]
    assert len(report["rss_per_wave_mb"]) == QUICK.waves
    assert report["rss_peak_mb"] == max(report["rss_per_wave_mb"])
    outcomes = report["connections"]
    assert sum(outcomes.values()) == QUICK.waves * QUICK.connections
    assert {key.split(":")[0] for key in outcomes} == set(KINDS)
    # Nothing logged in, so every connection ended before login: the server counted each.
    server = report["server"]
    assert server["fieldradio_prelogin_pending"] == 0
    ended = sum(v for k, v in server.items() if k.startswith("fieldradio_prelogin_closed_total"))
    assert ended == QUICK.waves * QUICK.connections
