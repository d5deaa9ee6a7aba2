"""The talker's voice protection, chosen from the loss its audience reports."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ptt_client.protection import (
    HISTORY_TTL,
    NONE,
    REPORT_WINDOW,
    Protection,
    ProtectionState,
    choose,
    effective_loss,
)
from ptt_protocol import control, repeats


def link(
    up: float = 0.0,
    down: float = 0.0,
    *,
    up_run: float = 1.0,
    down_run: float = 1.0,
    channel: int = 7,
) -> control.LinkReport:
    report = control.LinkReport(
        channel_id=channel,
        uplink_loss_pct=up,
        uplink_jitter_ms=3.0,
        uplink_loss_run=up_run,
        audience_loss_pct=down,
        audience_jitter_ms=4.0,
        audience_loss_run=down_run,
    )
    assert control.decode(control.encode(report)) == report  # a report the relay could send
    return report


# --- choose ----------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [0.0, 0.1, 0.5, 0.99, 0.999])
@pytest.mark.parametrize("run", [1.0, 1.4, 2.0, 5.0, 1000.0])
def test_a_clean_path_pays_nothing(loss: float, run: float) -> None:
    chosen = choose(loss, run)
    assert chosen.distances == ()
    assert chosen.reach == 0
    assert chosen.loss_pct == loss


@pytest.mark.parametrize("loss", [1.0, 1.2, 1.5, 1.999])
@pytest.mark.parametrize("run", [1.0, 1.2, 1.49])
def test_light_random_loss_repeats_the_previous_frame(loss: float, run: float) -> None:
    assert choose(loss, run) == Protection((1,), loss)
    assert choose(loss, run).reach == 1


@pytest.mark.parametrize("loss", [2.0, 2.5, 5.0, 20.0, 100.0])
@pytest.mark.parametrize("run", [1.0, 1.49])
def test_heavier_random_loss_repeats_the_two_previous_frames(loss: float, run: float) -> None:
    assert choose(loss, run) == Protection((1, 2), loss)
    assert choose(loss, run).reach == 2


@pytest.mark.parametrize("loss", [1.0, 1.5, 2.0, 10.0, 40.0])
@pytest.mark.parametrize("run", [1.5, 1.8, 2.0, 2.5, 3.0, 3.7, 4.5, 6.0])
def test_bursty_loss_reaches_past_the_run(loss: float, run: float) -> None:
    chosen = choose(loss, run)
    assert len(chosen.distances) == 2
    first, second = chosen.distances
    assert first >= 2  # a distance-1 repeat is lost with the run it should cover
    assert first < second <= repeats.MAX_DISTANCE
    # A run of L lost datagrams starting at frame k: frame k comes back only from a
    # datagram at k + d with d >= L; the farthest repeat must jump the whole (rounded-up) run.
    assert chosen.reach >= math.ceil(run)
    assert chosen.loss_pct == loss


@given(st.floats(0.0, 100.0), st.floats(1.0, control.MAX_LOSS_RUN))
def test_every_choice_is_packable(loss: float, run: float) -> None:
    chosen = choose(loss, run)
    assert len(chosen.distances) <= repeats.MAX_REPEATS
    assert list(chosen.distances) == sorted(set(chosen.distances))
    assert all(1 <= d <= repeats.MAX_DISTANCE for d in chosen.distances)
    assert chosen.reach == (chosen.distances[-1] if chosen.distances else 0)
    assert bool(chosen.distances) == (loss >= 1.0)


def test_none_is_no_repeats() -> None:
    assert NONE.distances == () and NONE.reach == 0 and NONE.loss_pct == 0.0


# --- effective_loss --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("up", "down"), [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (10.0, 20.0), (50.0, 50.0), (100.0, 3.0)]
)
def test_the_two_hops_compound(up: float, down: float) -> None:
    loss, _ = effective_loss(link(up, down))
    survives = (1 - up / 100) * (1 - down / 100)  # a frame must cross both hops
    assert loss == pytest.approx(100 * (1 - survives))


def test_compounding_worked_example() -> None:
    assert effective_loss(link(10.0, 20.0))[0] == pytest.approx(28.0)
    # Two hops just under the threshold each are over it together.
    loss, _ = effective_loss(link(0.6, 0.6))
    assert loss == pytest.approx(1.1964)
    assert choose(0.6, 1.0).distances == ()
    assert choose(loss, 1.0).distances == (1,)


def test_the_run_is_weighted_by_each_hops_loss() -> None:
    # 10 % in runs of 3 up, 20 % alone down: (3 * 0.1 + 1 * 0.2) / 0.3 = 5 / 3.
    assert effective_loss(link(10.0, 20.0, up_run=3.0))[1] == pytest.approx(5 / 3)
    # A clean hop's run does not count, however long it claims to be.
    assert effective_loss(link(0.0, 5.0, up_run=40.0, down_run=2.0))[1] == pytest.approx(2.0)
    assert effective_loss(link(5.0, 0.0, up_run=2.5, down_run=40.0))[1] == pytest.approx(2.5)
    assert effective_loss(link(0.0, 0.0, up_run=7.0, down_run=9.0)) == (0.0, 1.0)


# --- ProtectionState -------------------------------------------------------------------------


def test_a_clean_first_report_changes_nothing() -> None:
    state = ProtectionState()
    assert state.for_channel(7, 0.0) == NONE
    assert state.report(link(0.0, 0.5), 0.0) is None
    assert state.for_channel(7, 0.0).distances == ()


def test_the_new_protection_is_returned_only_on_change() -> None:
    state = ProtectionState()
    first = state.report(link(1.5), 0.0)
    assert first is not None and first.distances == (1,)
    assert first.loss_pct == pytest.approx(1.5)
    assert state.report(link(1.5), 1.0) is None
    assert state.report(link(1.2), 2.0) is None  # still (1,)
    worse = state.report(link(3.0), 3.0)
    assert worse is not None and worse.distances == (1, 2)
    assert state.report(link(4.0), 4.0) is None  # still (1, 2)
    assert state.for_channel(7, 4.0).distances == (1, 2)
    bursty = state.report(link(4.0, up_run=3.0), 5.0)
    assert bursty is not None and bursty.distances == (3, 6)


def test_a_clean_report_right_after_a_lossy_one_keeps_the_protection() -> None:
    state = ProtectionState()
    on = state.report(link(5.0), 10.0)
    assert on is not None and on.distances == (1, 2)
    for now in (11.0, 12.0, 13.0, 14.0, 10.0 + REPORT_WINDOW):
        assert state.report(link(0.0), now) is None
        assert state.for_channel(7, now).distances == (1, 2)
    # The lossy report is now older than the window: the path stayed clean, switch off.
    off = state.report(link(0.0), 10.0 + REPORT_WINDOW + 0.5)
    assert off is not None and off.distances == ()
    assert state.for_channel(7, 16.0).distances == ()


def test_the_worst_report_of_the_window_counts_not_the_latest() -> None:
    state = ProtectionState()
    assert state.report(link(3.0), 0.0) is not None  # (1, 2)
    assert state.report(link(1.5), 1.0) is None  # 3 % is still in the window
    assert state.for_channel(7, 1.0).distances == (1, 2)
    assert state.report(link(1.5), REPORT_WINDOW - 0.5) is None
    lighter = state.report(link(1.5), REPORT_WINDOW + 0.5)  # 3 % left the window
    assert lighter is not None and lighter.distances == (1,)
    assert lighter.loss_pct == pytest.approx(1.5)


def test_a_bursty_report_keeps_the_repeats_reaching_for_the_window() -> None:
    state = ProtectionState()
    chosen = state.report(link(5.0, up_run=3.0), 0.0)
    assert chosen is not None and chosen.distances == (3, 6)
    assert state.report(link(5.0), 1.0) is None  # random now, but the run is remembered
    random = state.report(link(5.0), 1.0 + REPORT_WINDOW)
    assert random is not None and random.distances == (1, 2)


def test_the_choice_is_kept_for_the_next_burst_until_its_ttl() -> None:
    state = ProtectionState()
    state.report(link(2.0, 1.0), 100.0)
    assert state.for_channel(7, 100.0).distances == (1, 2)
    assert state.for_channel(7, 100.0 + HISTORY_TTL).distances == (1, 2)
    assert state.for_channel(7, 100.0 + HISTORY_TTL + 0.001) == NONE


def test_channels_are_independent() -> None:
    state = ProtectionState()
    on_seven = state.report(link(5.0, channel=7), 0.0)
    assert on_seven is not None and on_seven.distances == (1, 2)
    assert state.for_channel(8, 0.0) == NONE
    assert state.report(link(0.0, channel=8), 1.0) is None
    on_nine = state.report(link(1.5, channel=9), 1.0)
    assert on_nine is not None and on_nine.distances == (1,)
    assert state.for_channel(7, 1.0).distances == (1, 2)
    assert state.for_channel(8, 1.0).distances == ()
    assert state.for_channel(9, 1.0).distances == (1,)
    # Channel 7's clean window does not depend on the others' reports.
    off = state.report(link(0.0, channel=7), REPORT_WINDOW + 1.0)
    assert off is not None and off.distances == ()
    assert state.for_channel(9, REPORT_WINDOW + 1.0).distances == (1,)


def test_protection_that_came_back_after_being_forgotten_is_announced() -> None:
    state = ProtectionState()
    assert state.report(link(up=5.0), 0.0) is not None
    later = HISTORY_TTL + 1.0
    assert state.for_channel(7, later) == NONE  # forgotten: sending without repeats
    back = state.report(link(up=5.0), later)
    assert back is not None and back.distances  # the same choice again, but news to the radio
