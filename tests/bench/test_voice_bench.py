"""``python -m bench.voice --quick --json`` runs the real pipeline and reports every figure.

Checks that the numbers exist and are physically sane, not that the goals are met (that is
what the full bench is for). The unmarked tests check correctness properties that no load on
this shared machine can break (every figure present, metrics inside their scales, frame fates
that add up, lower bounds that load only moves further away, the proxies' own counters, goals
judged against their figures), so they run in ``make test``. What a loaded machine can push
past any bound (upper bounds on timings, how much of the speech arrives in time to be played)
is marked ``bench`` and runs in ``make bench`` only.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench.quick import quick_report

CONDITIONS = ("clean", "up_loss5_jitter40", "both_loss5_jitter40", "up_loss10", "up_bursty5")
FIGURES = (
    "access_time_p95_ms",
    "mouth_to_ear_p95_ms",
    "late_entry_p95_ms",
    "pesq_wb",
    "stoi",
    "wire_kbps_mean",
    "wire_kbps_p95",
)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return quick_report("bench.voice", timeout=110)


@pytest.mark.timeout(120)
def test_every_condition_reports_every_figure_with_sane_values(report: dict[str, Any]) -> None:
    assert set(report["conditions"]) == set(CONDITIONS)
    for name in CONDITIONS:
        figures = report["conditions"][name]
        for key in FIGURES:
            assert isinstance(figures[key], float), (name, key, figures[key])
        assert figures["access_time_p95_ms"] > 0, (name, figures)
        # At least the jitter buffer's smallest delay (load only adds to it).
        assert figures["mouth_to_ear_p95_ms"] >= 20, (name, figures)
        assert figures["mouth_to_ear_median_ms"] <= figures["mouth_to_ear_p95_ms"]
        assert figures["late_entry_p95_ms"] > 0, (name, figures)
        assert figures["bursts"] == 2, (name, figures)
        # A late entrant hears a burst at all (within the bench's 3 s); hearing every one is
        # the bench-marked test's business.
        assert 1 <= figures["late_entries_heard"] <= figures["bursts"], (name, figures)
        # The scales of P.862.2 and of STOI.
        assert figures["pesq_wb"] >= 1.0 and figures["pesq_wb"] <= 4.65, (name, figures)
        assert 0.0 < figures["stoi"] <= 1.0, (name, figures)
        sent = figures["frames_sent"]
        fates = (
            "frames_played",
            "frames_rescued_by_repeats",
            "frames_fec",
            "frames_concealed",
            "frames_missing",
        )
        assert sent > 100 and sum(figures[f] for f in fates) == sent, (name, figures)
        assert figures["frames_played"] > 0, (name, figures)


@pytest.mark.bench
def test_the_quick_run_stays_within_loose_performance_bounds(report: dict[str, Any]) -> None:
    # Performance, not correctness: on a loaded machine frames come too late to play and the
    # late entrant's 3 s wait runs out, so this runs in `make bench` only.
    for name in CONDITIONS:
        figures = report["conditions"][name]
        assert figures["access_time_p95_ms"] < 2000, (name, figures)
        assert figures["mouth_to_ear_p95_ms"] < 2000, (name, figures)
        assert figures["late_entry_p95_ms"] < 3000, (name, figures)
        assert figures["late_entries_heard"] == figures["bursts"], (name, figures)
        assert figures["frames_played"] > 0.8 * figures["frames_sent"], (name, figures)
    # Random or silent audio scores below 0.3 STOI; the same words well above.
    assert report["conditions"]["clean"]["stoi"] > 0.5, report["conditions"]["clean"]


@pytest.mark.timeout(120)
def test_the_network_conditions_are_really_applied(report: dict[str, Any]) -> None:
    clean, jittery, both, lossy, bursty = (report["conditions"][n] for n in CONDITIONS)
    # What the proxy did, from its own counters (timings are the bench's business, not a
    # test's: this machine is shared and its load varies).
    assert clean["network"]["uplink_loss_measured_pct"] == 0
    assert clean["network"]["downlink_loss_measured_pct"] == 0
    assert jittery["network"]["uplink_loss_measured_pct"] > 0
    assert jittery["network"]["uplink_reordered"] > 0
    assert jittery["network"]["downlink_loss_measured_pct"] == 0
    assert both["network"]["downlink_loss_measured_pct"] > 0
    assert lossy["network"]["uplink_loss_measured_pct"] > 2
    assert bursty["network"]["uplink_loss_run_measured"] > 1.5  # losses come in runs


@pytest.mark.timeout(120)
def test_clean_speech_pays_for_no_protection_and_lossy_speech_gets_it(
    report: dict[str, Any],
) -> None:
    conditions = report["conditions"]
    clean = conditions["clean"]
    assert clean["repeats"]["talker_protection"] == []
    assert clean["frames_rescued_by_repeats"] == 0
    for name in CONDITIONS[1:]:
        figures = conditions[name]
        assert figures["repeats"]["talker_protection"], (name, figures["repeats"])
        # Each repeat is a whole sealed frame again: the lossy path carries more bytes.
        assert figures["wire_kbps_mean"] > clean["wire_kbps_mean"], name
        assert figures["repeats"]["listener_duplicates_dropped"] > 0, name


@pytest.mark.timeout(120)
def test_the_codec_alone_keeps_the_speech_that_was_sent(report: dict[str, Any]) -> None:
    # No network and no clock here (the samples through the Transmitter's Opus settings):
    # random or silent audio scores below 0.3 STOI; the same words well above.
    codec = report["codec_only"]
    assert codec["pesq_wb"] >= 1.0 and codec["pesq_wb"] <= 4.65 and 0.5 < codec["stoi"] <= 1.0, (
        codec
    )


@pytest.mark.timeout(120)
def test_every_goal_is_reported_against_its_figure(report: dict[str, Any]) -> None:
    goals = report["goals"]
    conditions = {c for c in CONDITIONS if c != "clean"}
    assert {k for k in goals if k.startswith("clean.")} == {
        f"clean.{figure}"
        for figure in (
            "access_time_p95_ms",
            "late_entry_p95_ms",
            "pesq_wb",
            "stoi",
            "mouth_to_ear_p95_ms",
            "wire_kbps_mean",
        )
    }
    for condition in conditions:
        assert {k for k in goals if k.startswith(f"{condition}.")} == {
            f"{condition}.{f}" for f in ("pesq_wb", "stoi", "mouth_to_ear_p95_ms", "wire_kbps_mean")
        }
    for key, goal in goals.items():
        condition, figure = key.split(".")
        assert goal["value"] == report["conditions"][condition][figure]
        limit = float(goal["goal"].split()[1])
        expected = (
            goal["value"] <= limit if goal["goal"].startswith("<=") else goal["value"] >= limit
        )
        assert goal["met"] is expected, (key, goal)
    assert report["settings"]["samples"] and report["settings"]["repeats"] == 2
