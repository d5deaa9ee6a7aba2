"""``python -m bench.relay --quick --json`` loads a real relay process and reports every figure.

Checks that each figure exists, is physically sane and agrees with the counts it is computed
from; not that the goals are met (the full bench is for that).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.relay import GOALS, QUICK, build_parser, params_from_args

REPOSITORY = Path(__file__).resolve().parents[2]
HEADLINE = (
    "fwd_pkts_per_cpu_s",
    "added_latency_p50_ms",
    "added_latency_p99_ms",
    "loss_pct",
    "idle_sessions_per_gb",
    "connect_4000_s",
    "idle_cpu_pct_2500",
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.relay", "--quick", "--json"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_headline_figures_are_present_and_sane(report: dict[str, Any]) -> None:
    for key in HEADLINE:
        assert isinstance(report[key], float), (key, report[key])
    assert report["fwd_pkts_per_cpu_s"] > 0
    assert 0 < report["added_latency_p50_ms"] <= report["added_latency_p99_ms"] < 1000
    assert 0.0 <= report["loss_pct"] <= 100.0
    assert report["idle_sessions_per_gb"] > 0
    assert 0 < report["connect_4000_s"] < 60
    assert 0.0 <= report["idle_cpu_pct_2500"] <= 200.0  # two cores at most
    assert report["forwarded_server"] > 0
    assert 0 < report["forwarded_listeners"] <= report["forwarded_server"]


def test_every_goal_is_reported_and_session_goals_are_not_judged_on_quick_numbers(
    report: dict[str, Any],
) -> None:
    assert set(report["goals"]) == set(GOALS)
    for key, goal in report["goals"].items():
        assert goal["value"] == report[key]
        assert goal["goal"].split()[0] in (">=", "<=")
    for key in ("connect_4000_s", "idle_cpu_pct_2500"):
        assert report["goals"][key]["met"] is None
    assert isinstance(report["goals"]["fwd_pkts_per_cpu_s"]["met"], bool)
    assert report["params"]["quick"] is True


def test_steps_agree_with_their_counts(report: dict[str, Any]) -> None:
    latency, load = report["steps"]
    assert (latency["step"], load["step"]) == ("latency", "load")
    listeners = report["params"]["listeners"]
    for step in (latency, load):
        assert step["talker_sent"] > 0
        assert 0 < step["server_received"] <= step["talker_sent"]
        assert step["server_forwarded"] <= step["server_received"] * listeners
        assert step["listeners_expected"] == step["talker_sent"] * listeners
        assert 0 < step["listeners_received"] <= step["listeners_expected"]
        expected, heard = step["listeners_expected"], step["listeners_received"]
        assert step["loss_pct"] == pytest.approx(100 * (expected - heard) / expected)
        assert step["server_cpu_s"] > 0 and step["window_s"] > report["params"]["seconds"]
        assert step["fwd_pkts_per_cpu_s"] == pytest.approx(
            step["server_forwarded"] / step["server_cpu_s"]
        )
    # The latency step times every datagram the listeners got; the load step none.
    assert latency["latency_samples"] == latency["listeners_received"]
    assert latency["latency_unopened"] == 0
    assert latency["latency_p99_ms"] <= latency["latency_max_ms"]
    assert load["latency_samples"] == 0
    assert report["loss_pct"] == latency["loss_pct"]
    assert report["fwd_pkts_per_cpu_s"] == load["fwd_pkts_per_cpu_s"]


def test_sessions_part_counts(report: dict[str, Any]) -> None:
    sessions = report["sessions"]
    assert sessions["connected"] == QUICK.sessions
    assert sessions["idle_sessions"] == QUICK.idle_sessions
    assert sessions["rss_after_mb"] > sessions["rss_before_mb"] > 0
    assert sessions["connect_server_cpu_s"] > 0
    assert 0 < sessions["keepalives_answered"] <= sessions["keepalives_sent"]
    assert sessions["idle_window_s"] >= QUICK.idle_seconds


def test_flags_override_the_quick_preset() -> None:
    args = build_parser().parse_args(["--quick", "--listeners", "7", "--seconds", "1.5"])
    params = params_from_args(args)
    assert (params.listeners, params.seconds, params.channels) == (7, 1.5, QUICK.channels)
    with pytest.raises(SystemExit):
        params_from_args(build_parser().parse_args(["--sessions", "10", "--idle-sessions", "20"]))
