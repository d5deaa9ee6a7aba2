"""``python -m bench.calls --quick --json`` places real calls and reports every figure.

The unmarked test checks what load cannot break (every figure present, inside its scale,
relay-only calls that really went through TURN, the goals judged against their figures);
whether the goals are met on this shared machine is the full bench's business (marked).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench.quick import quick_report

KEYS = ("setup_p95_ms", "setup_relay_p95_ms", "mouth_to_ear_p95_ms", "pesq_wb", "cpu_ms_per_call_s")


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return quick_report("bench.calls", timeout=150)


@pytest.mark.timeout(160)
def test_every_figure_is_reported_with_a_sane_value(report: dict[str, Any]) -> None:
    assert report["calls"] == {"direct": 3, "relay": 3}
    for key in KEYS:
        assert isinstance(report[key], float), key
        assert report[key] > 0, key
        goal = report["goals"][key]
        assert goal["value"] == report[key]
        limit = float(goal["goal"].split()[1])
        assert goal["met"] == (
            report[key] <= limit if goal["goal"].startswith("<=") else report[key] >= limit
        )
    # Physical floors: a frame cannot be heard before it was said plus one frame of
    # encoding; PESQ-WB is at most 4.64; speech that arrives is recognisably the same.
    assert report["mouth_to_ear_p50_ms"] >= 20.0
    assert report["pesq_wb"] <= 4.64 and report["stoi"] > 0.9
    assert report["setup_median_ms"] <= report["setup_p95_ms"]


@pytest.mark.bench
@pytest.mark.timeout(160)
def test_the_goals_are_met(report: dict[str, Any]) -> None:
    missed = {k: g for k, g in report["goals"].items() if not g["met"]}
    assert not missed, missed
