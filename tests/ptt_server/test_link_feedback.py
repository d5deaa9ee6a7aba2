"""The relay's loss feedback to a talker: its uplink from the hop counters, its audience's reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_protocol import control
from ptt_protocol.media import HopSession, pack_inner
from ptt_server.link_feedback import (
    AUDIENCE_JITTER_CAP_MS,
    AUDIENCE_LOSS_CAP,
    AUDIENCE_LOSS_RUN_CAP,
    FIRST_REPORT_AFTER,
    HISTORY_TTL,
    MIN_REPORT_INTERVAL,
    REPORT_INTERVAL,
    REPORT_TTL,
    ChannelFeedback,
    ReportRefused,
)

KEY = bytes(range(100, 132))
RADIO = ("198.51.100.7", 40000)
CHANNEL = 12
TALKER = 0x7001
FRAME_S = 0.020


def mean_run(lost: int, runs: int) -> float:
    """What the report must say: the mean run once three runs were seen, else 1 (a pair of
    losses in a row is chance on a random path, not burstiness)."""
    return lost / runs if runs >= 3 else 1.0


def uplink() -> tuple[HopSession, HopSession]:
    """The talker's radio session (seals) and the relay's session for it (opens)."""
    return HopSession(TALKER, KEY, "client"), HopSession(TALKER, KEY, "server")


def carry(radio: HopSession, relay: HopSession, count: int, lost: Iterable[int] = ()) -> None:
    """``count`` datagrams up; the network loses the indexes in ``lost``, the rest arrive in order."""
    dropped = set(lost)
    for i in range(count):
        datagram = radio.seal(pack_inner(CHANNEL, 1, i, 0, b"voice"))
        if i not in dropped:
            relay.open(datagram, RADIO)


def wire(report: control.LinkReport) -> control.LinkReport:
    """The report as the talker decodes it: proves every field is inside its limits."""
    decoded = control.decode(control.encode(report))
    assert decoded == report
    assert isinstance(decoded, control.LinkReport)
    return decoded


def listener_report(
    loss: float, jitter: float = 0.0, run: float = 1.0, channel: int = CHANNEL
) -> control.ReceiverReport:
    report = control.ReceiverReport(
        channel_id=channel, loss_pct=loss, jitter_ms=jitter, loss_run=run
    )
    assert control.decode(control.encode(report)) == report  # one a radio could send
    return report


def nearest_rank(values: Sequence[float], percentile: int = 90) -> float:
    """The audience's value: the nearest-rank percentile (the smallest value with
    ``percentile`` % at or below it), but never the single worst of two or more values."""
    ordered = sorted(values)
    count = len(ordered)
    rank = -(-percentile * count // 100) - 1  # ceil, in integers; 0-based
    if count >= 2:
        rank = min(rank, count - 2)
    return ordered[rank]


def test_the_reference_rank() -> None:
    """The helper itself, on hand-counted cases (0-based index into the sorted values)."""
    values = [float(i) for i in range(30)]
    expected = {1: 0, 2: 0, 3: 1, 4: 2, 9: 7, 10: 8, 11: 9, 19: 17, 20: 17, 21: 18, 30: 26}
    for count, index in expected.items():
        assert nearest_rank(values[:count]) == values[index], count


def rfc3550_jitter(arrivals: Sequence[tuple[int, float]]) -> float:
    jitter, previous = 0.0, None
    for sequence, at in arrivals:
        transit = at - sequence * FRAME_S
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
    return jitter


def talking(now: float = 0.0) -> tuple[ChannelFeedback, HopSession, HopSession]:
    radio, relay = uplink()
    feedback = ChannelFeedback()
    feedback.talk_started(TALKER, relay, now)
    return feedback, radio, relay


# --- The uplink ------------------------------------------------------------------------------


def test_uplink_loss_counts_from_the_grant() -> None:
    radio, relay = uplink()
    carry(radio, relay, 30, lost={2, 3, 4, 5, 6, 7, 20})  # before the grant: not this burst's
    feedback = ChannelFeedback()
    feedback.talk_started(TALKER, relay, 100.0)
    carry(radio, relay, 20, lost={3, 4, 10})
    report = wire(feedback.report(CHANNEL, relay, 100.5))
    assert report.channel_id == CHANNEL
    assert report.uplink_loss_pct == pytest.approx(15.0)  # 3 of 20
    # The run is the link's, over the whole session: 10 lost in 4 runs.
    assert report.uplink_loss_run == pytest.approx(mean_run(7 + 3, 2 + 2))


@pytest.mark.parametrize(
    ("count", "lost"),
    [
        (10, set()),
        (10, {0}),
        (40, {1, 3, 5, 7, 9}),
        (40, set(range(5, 25))),
        (100, {10, 11, 12, 13, 50, 70, 71}),
    ],
)
def test_uplink_loss_and_run_are_the_exact_gaps(count: int, lost: set[int]) -> None:
    feedback, radio, relay = talking()
    carry(radio, relay, 1)  # counter 0 arrives, so a loss at index 0 is a gap too
    carry(radio, relay, count, lost)
    report = wire(feedback.report(CHANNEL, relay, 1.0))
    runs = sum(1 for i in lost if i - 1 not in lost)
    assert report.uplink_loss_pct == pytest.approx(100 * len(lost) / (count + 1))
    assert report.uplink_loss_run == pytest.approx(mean_run(len(lost), runs))


def test_uplink_loss_is_the_whole_burst_so_far() -> None:
    feedback, radio, relay = talking()
    carry(radio, relay, 10, lost={5})
    assert wire(feedback.report(CHANNEL, relay, 0.5)).uplink_loss_pct == pytest.approx(10.0)
    carry(radio, relay, 10, lost={2, 3})
    second = wire(feedback.report(CHANNEL, relay, 1.5))
    assert second.uplink_loss_pct == pytest.approx(15.0)  # 3 of 20 since the grant
    assert second.uplink_loss_run == 1.0  # 3 lost in 2 runs


def test_a_late_datagram_is_not_lost() -> None:
    feedback, radio, relay = talking()
    sealed = [radio.seal(pack_inner(CHANNEL, 1, i, 0, b"v")) for i in range(10)]
    for i in (0, 1, 2, 4, 5, 3, 6, 7, 8, 9):
        relay.open(sealed[i], RADIO)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert report.uplink_loss_pct == 0.0
    assert report.uplink_loss_run == 1.0


def test_uplink_figures_stay_inside_the_report_limits() -> None:
    feedback, radio, relay = talking()
    # Three runs of 1500 datagrams, each followed by one that arrives.
    carry(radio, relay, 4504, lost={i for i in range(1, 4504) if i % 1501 != 0})
    feedback.voice_frame(0, 0.0)
    feedback.voice_frame(1, 1000.0)  # 1000 s late: J = 62.5 s
    report = wire(feedback.report(CHANNEL, relay, 1000.0))
    assert report.uplink_loss_pct == pytest.approx(100 * 4500 / 4504)
    assert report.uplink_loss_run == control.MAX_LOSS_RUN
    assert report.uplink_jitter_ms == control.MAX_JITTER_MS


# --- Jitter ----------------------------------------------------------------------------------


def test_perfectly_spaced_frames_have_no_jitter() -> None:
    feedback, _, relay = talking()
    for sequence in range(100):
        feedback.voice_frame(sequence, 50.0 + 0.041 + sequence * FRAME_S)
    assert wire(feedback.report(CHANNEL, relay, 52.0)).uplink_jitter_ms == pytest.approx(
        0.0, abs=1e-6
    )


def test_jitter_worked_example() -> None:
    feedback, _, relay = talking()
    feedback.voice_frame(0, 1.0)
    feedback.voice_frame(1, 1.0 + 0.020 + 0.032)  # 32 ms late: J = 32 / 16 = 2 ms
    assert wire(feedback.report(CHANNEL, relay, 1.1)).uplink_jitter_ms == pytest.approx(2.0)
    feedback.voice_frame(2, 1.0 + 0.040 + 0.032)  # same delay: D = 0, J = 2 * 15/16
    assert wire(feedback.report(CHANNEL, relay, 2.1)).uplink_jitter_ms == pytest.approx(1.875)


@given(st.lists(st.floats(0.0, 0.3), min_size=2, max_size=100))
@settings(deadline=None)
def test_jitter_follows_rfc_3550_and_grows_with_it(delays: list[float]) -> None:
    feedback, _, relay = talking()
    arrivals = [(s, 5.0 + s * FRAME_S + d) for s, d in enumerate(delays)]
    for sequence, at in arrivals:
        feedback.voice_frame(sequence, at)
    jitter = wire(feedback.report(CHANNEL, relay, 10.0)).uplink_jitter_ms
    assert jitter == pytest.approx(1000 * rfc3550_jitter(arrivals), abs=1e-9)
    # Twice the delay variation, twice the jitter (the estimator is linear in it).
    doubled, _, relay2 = talking()
    for sequence, delay in enumerate(delays):
        doubled.voice_frame(sequence, 5.0 + sequence * FRAME_S + 2 * delay)
    assert wire(doubled.report(CHANNEL, relay2, 10.0)).uplink_jitter_ms == pytest.approx(
        2 * jitter, abs=1e-6
    )


def test_a_new_burst_starts_its_jitter_afresh() -> None:
    feedback, _, relay = talking()
    feedback.voice_frame(0, 0.0)
    feedback.voice_frame(1, 0.5)
    assert wire(feedback.report(CHANNEL, relay, 1.0)).uplink_jitter_ms > 10.0
    feedback.talk_ended()
    feedback.talk_started(TALKER, relay, 5.0)
    feedback.voice_frame(0, 9.0)  # a new burst's first frame: no transit to compare yet
    feedback.voice_frame(1, 9.02)
    assert wire(feedback.report(CHANNEL, relay, 9.5)).uplink_jitter_ms == pytest.approx(
        0.0, abs=1e-6
    )


# --- Report timing and the first-loss trigger ------------------------------------------------


def test_the_first_report_comes_soon_after_the_grant_then_every_interval() -> None:
    feedback, _, relay = talking(20.0)
    assert feedback.next_report == pytest.approx(20.0 + FIRST_REPORT_AFTER)
    wire(feedback.report(CHANNEL, relay, 20.5))
    assert feedback.next_report == pytest.approx(20.5 + REPORT_INTERVAL)
    wire(feedback.report(CHANNEL, relay, 21.7))  # early (the first-loss trigger): counted from now
    assert feedback.next_report == pytest.approx(21.7 + REPORT_INTERVAL)
    feedback.talk_ended()
    assert feedback.next_report is None
    assert feedback.watching is False


def lossy_history(at: float, loss: float = 4.0) -> tuple[ChannelFeedback, HopSession]:
    """A channel whose audience reported ``loss`` % during a burst that ended at ``at``."""
    feedback, _, relay = talking(at - 2.0)
    feedback.receiver_report(1, listener_report(loss, 5.0, 2.0), at - 1.0)
    wire(feedback.report(CHANNEL, relay, at))
    feedback.talk_ended()
    return feedback, relay


def test_a_lossy_audience_of_the_last_minute_gets_the_report_at_once() -> None:
    feedback, relay = lossy_history(100.0)
    feedback.talk_started(TALKER, relay, 100.0 + HISTORY_TTL)
    assert feedback.next_report == 100.0 + HISTORY_TTL
    # Its listeners' reports expired long ago: the report carries the remembered figure.
    report = wire(feedback.report(CHANNEL, relay, 100.0 + HISTORY_TTL))
    assert report.audience_loss_pct == pytest.approx(4.0)
    assert report.audience_jitter_ms == pytest.approx(5.0)
    assert report.audience_loss_run == pytest.approx(2.0)


def test_an_old_or_clean_history_waits_for_the_first_report() -> None:
    feedback, relay = lossy_history(100.0)
    start = 100.0 + HISTORY_TTL + 0.5
    feedback.talk_started(TALKER, relay, start)
    assert feedback.next_report == pytest.approx(start + FIRST_REPORT_AFTER)
    report = wire(feedback.report(CHANNEL, relay, start + FIRST_REPORT_AFTER))
    assert report.audience_loss_pct == 0.0  # forgotten
    clean, relay2 = lossy_history(200.0, loss=0.0)
    clean.talk_started(TALKER, relay2, 201.0)
    assert clean.next_report == pytest.approx(201.0 + FIRST_REPORT_AFTER)


def test_watching_follows_what_the_talker_was_last_told() -> None:
    feedback, radio, relay = talking()
    assert feedback.watching is True
    carry(radio, relay, 5)
    assert feedback.lost_when_clean == 0
    assert relay.lost == feedback.lost_when_clean  # the hot path's trigger stays quiet
    wire(feedback.report(CHANNEL, relay, 0.5))
    assert feedback.watching is True  # told "clean"
    assert feedback.lost_when_clean == relay.lost == 0
    sealed = [radio.seal(pack_inner(CHANNEL, 1, i, 0, b"v")) for i in range(3)]
    relay.open(sealed[0], RADIO)
    relay.open(sealed[2], RADIO)  # sealed[1] is late or lost
    assert relay.lost == 1 != feedback.lost_when_clean  # the trigger: report now
    lossy = wire(feedback.report(CHANNEL, relay, 0.7))
    assert lossy.uplink_loss_pct > 0
    assert feedback.watching is False
    assert feedback.lost_when_clean == relay.lost == 1
    relay.open(sealed[1], RADIO)  # it was only late
    assert relay.lost == 0
    clean = wire(feedback.report(CHANNEL, relay, 1.7))
    assert clean.uplink_loss_pct == 0.0
    assert feedback.watching is True
    assert feedback.lost_when_clean == relay.lost == 0


def test_the_trigger_counts_from_the_grant() -> None:
    radio, relay = uplink()
    carry(radio, relay, 10, lost={1, 2, 3})
    feedback = ChannelFeedback()
    feedback.talk_started(TALKER, relay, 0.0)
    assert feedback.watching is True
    assert feedback.lost_when_clean == relay.lost == 3


# --- The audience ----------------------------------------------------------------------------


def test_one_broken_listener_of_eleven_does_not_set_the_figure() -> None:
    feedback, _, relay = talking()
    for listener in range(10):
        feedback.receiver_report(listener, listener_report(2.0, 10.0, 1.0), 0.1)
    feedback.receiver_report(99, listener_report(80.0, 900.0, 50.0), 0.1)
    # Nearest rank: ceil(0.9 * 11) = 10, the 10th of the 11 sorted figures: 2 %.
    assert nearest_rank([2.0] * 10 + [80.0]) == 2.0
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert report.audience_loss_pct == pytest.approx(2.0)
    assert report.audience_jitter_ms == pytest.approx(10.0)
    assert report.audience_loss_run == pytest.approx(1.0)


def test_two_broken_listeners_of_ten_do() -> None:
    feedback, _, relay = talking()
    for listener in range(8):
        feedback.receiver_report(listener, listener_report(2.0, 10.0, 1.0), 0.1)
    feedback.receiver_report(98, listener_report(15.0, 30.0, 3.0), 0.1)
    feedback.receiver_report(99, listener_report(16.0, 40.0, 4.0), 0.1)
    # ceil(0.9 * 10) = 9: the 9th of 10 sorted figures (not the worst), the first broken one.
    assert nearest_rank([2.0] * 8 + [15.0, 16.0]) == 15.0
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert report.audience_loss_pct == pytest.approx(15.0)
    assert report.audience_jitter_ms == pytest.approx(30.0)
    # The run is sorted on its own and taken at the same rank: 1 x 8, 3, 4 -> 3.
    assert report.audience_loss_run == pytest.approx(3.0)


def test_loss_jitter_and_run_are_each_ranked_on_their_own() -> None:
    feedback, _, relay = talking()
    # Three listeners whose orders disagree: the second of three in each column.
    figures = [(1.0, 300.0, 3.0), (5.0, 100.0, 1.0), (9.0, 200.0, 2.0)]
    for listener, (loss, jitter, run) in enumerate(figures):
        feedback.receiver_report(listener, listener_report(loss, jitter, run), 0.1)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    # Not any one listener's row: 5 % is the 2nd listener's, 200 ms and 2.0 the 3rd's.
    assert report.audience_loss_pct == pytest.approx(5.0)
    assert report.audience_jitter_ms == pytest.approx(200.0)
    assert report.audience_loss_run == pytest.approx(2.0)


@pytest.mark.parametrize("listeners", range(2, 10))
def test_one_lying_listener_of_a_small_channel_does_not_set_the_figure(listeners: int) -> None:
    """On 2..9 listeners the 90th percentile would be the worst report: it is the second worst."""
    feedback, _, relay = talking()
    honest = [(float(i), 10.0 * i, 1.0 + 0.25 * i) for i in range(listeners - 1)]
    for listener, (loss, jitter, run) in enumerate(honest):
        feedback.receiver_report(listener, listener_report(loss, jitter, run), 0.1)
    feedback.receiver_report(99, listener_report(60.0, 10_000.0, 1000.0), 0.1)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    worst_honest = honest[-1]  # each column increases with the listener: the last is the worst
    assert worst_honest[0] < AUDIENCE_LOSS_CAP
    assert worst_honest[1] < AUDIENCE_JITTER_CAP_MS
    assert worst_honest[2] < AUDIENCE_LOSS_RUN_CAP
    assert report.audience_loss_pct == pytest.approx(worst_honest[0])
    assert report.audience_jitter_ms == pytest.approx(worst_honest[1])
    assert report.audience_loss_run == pytest.approx(worst_honest[2])


def test_three_clean_listeners_outvote_a_liar() -> None:
    feedback, _, relay = talking()
    for listener in range(3):
        feedback.receiver_report(listener, listener_report(0.0, 0.0, 1.0), 0.1)
    feedback.receiver_report(99, listener_report(60.0, 10_000.0, 1000.0), 0.1)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert (report.audience_loss_pct, report.audience_jitter_ms, report.audience_loss_run) == (
        0.0,
        0.0,
        1.0,
    )


def test_the_audience_figure_is_capped() -> None:
    feedback, _, relay = talking()
    feedback.receiver_report(1, listener_report(80.0, 20.0, 7.0), 0.1)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert report.audience_loss_pct == 20.0 == AUDIENCE_LOSS_CAP
    assert report.audience_jitter_ms == pytest.approx(20.0)  # under its cap: as reported
    assert report.audience_loss_run == 4.0 == AUDIENCE_LOSS_RUN_CAP


@pytest.mark.parametrize("listeners", [1, 2, 5, 12])
def test_jitter_and_run_are_capped(listeners: int) -> None:
    feedback, _, relay = talking()
    for listener in range(listeners):
        figures = (10.0 + listener, 900.0 + listener, 6.0 + listener)
        feedback.receiver_report(listener, listener_report(*figures), 0.1)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert report.audience_jitter_ms == 500.0 == AUDIENCE_JITTER_CAP_MS
    assert report.audience_loss_run == 4.0 == AUDIENCE_LOSS_RUN_CAP
    assert report.audience_loss_pct == pytest.approx(
        nearest_rank([10.0 + i for i in range(listeners)])
    )
    assert feedback.remembered is not None
    assert feedback.remembered[:3] == (report.audience_loss_pct, 500.0, 4.0)  # capped, too


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        ((0.0, 0.0, 1.0), (0.0, 0.0, 1.0)),
        ((7.5, 42.0, 2.5), (7.5, 42.0, 2.5)),
        ((20.0, 500.0, 4.0), (20.0, 500.0, 4.0)),
        ((60.0, 10_000.0, 1000.0), (20.0, 500.0, 4.0)),
        ((3.0, 800.0, 1.5), (3.0, 500.0, 1.5)),
    ],
)
def test_a_single_listener_sets_the_figure(
    figures: tuple[float, float, float], expected: tuple[float, float, float]
) -> None:
    feedback, _, relay = talking()
    feedback.receiver_report(1, listener_report(*figures), 0.1)
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    got = (report.audience_loss_pct, report.audience_jitter_ms, report.audience_loss_run)
    assert got == pytest.approx(expected)


@given(
    st.lists(
        st.tuples(
            st.floats(0.0, 100.0), st.floats(0.0, control.MAX_JITTER_MS), st.floats(1.0, 1000.0)
        ),
        min_size=1,
        max_size=60,
    )
)
@settings(max_examples=200, deadline=None)
def test_the_audience_figure_is_the_capped_nearest_rank_percentile(
    figures: list[tuple[float, float, float]],
) -> None:
    feedback, _, relay = talking()
    for listener, (loss, jitter, run) in enumerate(figures):
        feedback.receiver_report(listener, listener_report(loss, jitter, run), 0.2)
    report = wire(feedback.report(CHANNEL, relay, 1.0))
    assert report.audience_loss_pct == min(20.0, nearest_rank([f[0] for f in figures]))
    assert report.audience_jitter_ms == min(500.0, nearest_rank([f[1] for f in figures]))
    assert report.audience_loss_run == min(4.0, nearest_rank([f[2] for f in figures]))
    if len(figures) >= 2:  # never above the second worst, in any column
        for column, got in enumerate(
            (report.audience_loss_pct, report.audience_jitter_ms, report.audience_loss_run)
        ):
            assert got <= sorted(f[column] for f in figures)[-2]


def test_reports_older_than_their_ttl_are_ignored_and_pruned() -> None:
    feedback, _, relay = talking()
    feedback.receiver_report(1, listener_report(1.0), 0.0)
    feedback.receiver_report(2, listener_report(10.0), 2.0)
    # Both count (two reports: the better one; 2's alone would say 10 %).
    assert feedback.audience(REPORT_TTL) == pytest.approx((1.0, 0.0, 1.0))
    assert feedback.audience(REPORT_TTL + 0.01)[0] == pytest.approx(10.0)  # 1's report is old
    assert set(feedback._audience) == {2}
    report = wire(feedback.report(CHANNEL, relay, 2.0 + REPORT_TTL + 0.01))
    # Nobody fresh: the figure remembered from the last audience, within its minute.
    assert report.audience_loss_pct == pytest.approx(10.0)
    assert set(feedback._audience) == set()


def test_the_talkers_own_report_is_excluded() -> None:
    feedback, _, relay = talking()
    feedback.receiver_report(TALKER, listener_report(0.0), 0.1)
    feedback.receiver_report(2, listener_report(8.0), 0.1)
    # 2 alone: 8 %. (Counting the talker's, two reports: the better one, 0 %.)
    assert wire(feedback.report(CHANNEL, relay, 0.5)).audience_loss_pct == pytest.approx(8.0)
    # Only while it talks: as a listener again its report counts (two: the better one).
    feedback.talk_ended()
    assert feedback.audience(0.6)[0] == 0.0
    feedback.receiver_report(3, listener_report(4.0), 0.9)
    feedback.talk_started(2, relay, 1.0)
    # Now 2 talks: TALKER's 0 % and 3's 4 % count, 2's 8 % does not (with it: 4 %).
    assert feedback.audience(1.0)[0] == 0.0


def test_forget_removes_a_listener() -> None:
    feedback, _, relay = talking()
    feedback.receiver_report(1, listener_report(0.5), 0.1)
    feedback.receiver_report(2, listener_report(12.0), 0.1)
    assert wire(feedback.report(CHANNEL, relay, 0.5)).audience_loss_pct == pytest.approx(0.5)
    feedback.forget(1)
    feedback.forget(12345)  # unknown: nothing happens
    assert wire(feedback.report(CHANNEL, relay, 1.5)).audience_loss_pct == pytest.approx(12.0)


def test_a_report_too_soon_is_refused_and_changes_nothing() -> None:
    feedback, _, relay = talking()
    feedback.receiver_report(1, listener_report(5.0, 3.0, 2.0), 10.0)
    with pytest.raises(ReportRefused):
        feedback.receiver_report(1, listener_report(50.0, 300.0, 9.0), 10.0 + 0.49)
    assert issubclass(ReportRefused, ValueError)
    report = wire(feedback.report(CHANNEL, relay, 10.49))
    assert report.audience_loss_pct == pytest.approx(5.0)
    assert report.audience_jitter_ms == pytest.approx(3.0)
    assert report.audience_loss_run == pytest.approx(2.0)
    # The refused report did not move the clock: 0.5 s after the accepted one is allowed.
    feedback.receiver_report(1, listener_report(7.0), 10.0 + MIN_REPORT_INTERVAL)
    assert feedback.audience(10.6)[0] == pytest.approx(7.0)
    # Other listeners are not limited by listener 1's pace (two reports: the better one).
    feedback.receiver_report(2, listener_report(3.0), 10.6)
    assert feedback.audience(10.6)[0] == pytest.approx(3.0)


def test_no_audience_is_a_clean_figure() -> None:
    feedback, _, relay = talking()
    report = wire(feedback.report(CHANNEL, relay, 0.5))
    assert (report.audience_loss_pct, report.audience_jitter_ms, report.audience_loss_run) == (
        0.0,
        0.0,
        1.0,
    )
    assert report.uplink_loss_pct == 0.0 and report.uplink_loss_run == 1.0
