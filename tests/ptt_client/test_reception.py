"""What a radio receives: repeats de-duplicated, and its downlink measured for receiver reports."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client import reception
from ptt_client.reception import RECEIVING_WINDOW, REPORT_INTERVAL, Reception, Split
from ptt_protocol import control, media
from ptt_protocol.errors import MalformedError
from ptt_protocol.media import FEC, SIGNATURE, HopSession, pack_inner
from ptt_protocol.repeats import Repeat, explode, pack_redundant
from tests.ptt_server.test_link_feedback import mean_run

KEY = bytes(range(32))
RELAY = ("192.0.2.10", 4433)
CHANNEL, BURST = 7, 41
FRAME_S = 0.020
STATEMENTS = 1 << 31


def downlink(index: int = 0x51) -> tuple[HopSession, HopSession]:
    """The relay's session to this radio (seals) and the radio's own (opens)."""
    return HopSession(index, KEY, "server"), HopSession(index, KEY, "client")


def carry(
    relay: HopSession, radio: HopSession, count: int, lost: Iterable[int] = ()
) -> list[bytes]:
    """Seal ``count`` datagrams; the network loses the indexes in ``lost``, the rest arrive in
    order. Returns what was sealed."""
    dropped = set(lost)
    sealed = [relay.seal(pack_inner(CHANNEL, BURST, i, 0, b"v")) for i in range(count)]
    for i, datagram in enumerate(sealed):
        if i not in dropped:
            radio.open(datagram, RELAY)
    return sealed


def gaps(count: int, lost: Iterable[int]) -> tuple[int, int, int]:
    """(received, lost, runs) that a receiver of ``count`` datagrams less ``lost`` can see:
    a loss is visible once a later datagram arrives; a run is consecutive lost indexes."""
    dropped = set(lost)
    arrived = [i for i in range(count) if i not in dropped]
    if not arrived:
        return 0, 0, 0
    seen = sorted(i for i in dropped if i < arrived[-1])
    runs = sum(1 for i in seen if i - 1 not in dropped)
    return len(arrived), len(seen), runs


def through_the_wire(report: control.ReceiverReport) -> control.ReceiverReport:
    """The report as the relay decodes it: proves every field is inside its limits."""
    decoded = control.decode(control.encode(report))
    assert decoded == report
    assert isinstance(decoded, control.ReceiverReport)
    return decoded


def rfc3550_jitter(arrivals: Sequence[tuple[int, float]]) -> float:
    """RFC 3550 A.8 interarrival jitter (seconds) of (sequence, arrival) with 20 ms frames."""
    jitter, previous = 0.0, None
    for sequence, at in arrivals:
        transit = at - sequence * FRAME_S
        if previous is not None:
            jitter += (abs(transit - previous) - jitter) / 16
        previous = transit
    return jitter


def heard(rx: Reception, arrivals: Iterable[tuple[int, float]], channel: int = CHANNEL) -> None:
    for sequence, at in arrivals:
        rx.taken(channel, BURST, sequence, False, at)


def redundant(sequence: int, distances: Sequence[int], burst: int = BURST) -> bytes:
    reps = [Repeat(d, 0, f"frame-{sequence - d}".encode()) for d in distances]
    return pack_redundant(
        CHANNEL, burst, sequence, FEC, f"frame-{sequence}".encode(), reps, max(distances, default=0)
    )


def sequences(split: Split) -> list[int]:
    return [media.INNER_HEADER.unpack_from(f)[2] for f, _ in split.frames]


# --- De-duplication --------------------------------------------------------------------------


def test_split_without_anything_taken_gives_every_frame() -> None:
    rx = Reception()
    inner = redundant(9, (1, 2))
    split = rx.split(inner)
    assert split == Split(2, explode(media.unpack_inner(inner)).frames)
    assert sequences(split) == [7, 8, 9]
    assert [r for _, r in split.frames] == [True, True, False]
    assert split.frames[0][0] == pack_inner(CHANNEL, BURST, 7, 0, b"frame-7")
    assert rx.duplicates == 0


def test_split_drops_the_frames_already_taken() -> None:
    rx = Reception()
    for sequence in (7, 8):
        rx.taken(CHANNEL, BURST, sequence, False, 1.0)
    split = rx.split(redundant(9, (1, 2)))
    assert split == Split(2, ((pack_inner(CHANNEL, BURST, 9, FEC, b"frame-9"), False),))
    assert rx.duplicates == 2
    rx.taken(CHANNEL, BURST, 9, False, 1.02)
    assert rx.split(redundant(10, (1, 2))).frames == (
        (pack_inner(CHANNEL, BURST, 10, FEC, b"frame-10"), False),
    )
    assert rx.duplicates == 4
    # The primary itself arriving again (late, after its repeat was taken) is a duplicate too.
    assert rx.split(pack_inner(CHANNEL, BURST, 9, 0, b"frame-9")).frames == ()
    assert rx.duplicates == 5


def test_a_frame_only_offered_does_not_shadow_the_real_one() -> None:
    rx = Reception()
    forged = pack_inner(CHANNEL, BURST, 6, 0, b"forged-sframe")
    assert rx.split(forged).frames == ((forged, False),)
    # The key ring refused it: nothing is taken. The real frame 6 is still wanted, as the
    # repeat in datagram 7 and as its own datagram, however often they are offered.
    real = pack_inner(CHANNEL, BURST, 6, 0, b"frame-6")
    assert rx.split(redundant(7, (1,))).frames[0] == (real, True)
    assert rx.split(real).frames == ((real, False),)
    assert rx.split(forged).frames == ((forged, False),)
    assert rx.duplicates == 0
    rx.taken(CHANNEL, BURST, 6, False, 2.0)
    assert rx.split(forged).frames == ()
    assert rx.duplicates == 1


def test_repeats_taken_count_as_rescued_and_shadow_the_late_original() -> None:
    rx = Reception()
    # Datagram 6 is lost: datagram 7 brings frame 6 as a repeat.
    split = rx.split(redundant(7, (1,)))
    for plain, is_repeat in split.frames:
        header = media.INNER_HEADER.unpack_from(plain)
        rx.taken(header[0], header[1], header[2], is_repeat, 3.0)
    assert rx.rescued == 1
    late = pack_inner(CHANNEL, BURST, 6, 0, b"frame-6")
    assert rx.split(late).frames == ()
    assert rx.duplicates == 1
    assert rx.rescued == 1  # offering is not taking


def test_taken_frames_belong_to_their_channel_and_burst() -> None:
    rx = Reception()
    rx.taken(CHANNEL, BURST, 8, False, 1.0)
    assert sequences(rx.split(redundant(9, (1,), burst=BURST + 1))) == [8, 9]
    other = pack_redundant(CHANNEL + 1, BURST, 9, 0, b"p", [Repeat(1, 0, b"r")], reach=1)
    assert sequences(rx.split(other)) == [8, 9]
    assert rx.duplicates == 0


def test_the_least_recently_used_burst_is_forgotten_first() -> None:
    rx = Reception()
    rx.taken(CHANNEL, BURST, 5, False, 0.0)
    assert rx.split(pack_inner(CHANNEL, BURST, 5, 0, b"x")).frames == ()
    for burst in range(1000, 1000 + reception._BURSTS_KEPT - 1):
        rx.taken(CHANNEL, burst, 0, False, 0.0)
    # BURST is the oldest, but still in use (a long call while other channels come and go).
    assert rx.split(pack_inner(CHANNEL, BURST, 5, 0, b"x")).frames == ()
    rx.taken(CHANNEL, 5000, 0, False, 0.0)
    assert rx.split(pack_inner(CHANNEL, BURST, 5, 0, b"x")).frames == ()  # still kept
    assert len(rx.split(pack_inner(CHANNEL, 1000, 0, 0, b"x")).frames) == 1  # forgotten


def test_taken_frames_are_bounded_whatever_arrives() -> None:
    rx = Reception()
    for sequence in range(0, 80_000, 3):
        rx.taken(CHANNEL, BURST, sequence, False, 0.0)
    held = rx._taken[(CHANNEL, BURST)]
    assert len(held._seen) <= 4 * reception._TAKEN_WINDOW + 1
    # Copies of frames long behind the newest are dropped as duplicates, recent ones too.
    assert rx.split(pack_inner(CHANNEL, BURST, 10, 0, b"x")).frames == ()
    assert rx.split(pack_inner(CHANNEL, BURST, 79_998, 0, b"x")).frames == ()
    assert len(rx.split(pack_inner(CHANNEL, BURST, 79_997, 0, b"x")).frames) == 1


def test_a_new_session_forgets_what_was_taken_and_held() -> None:
    rx = Reception()
    rx.taken(CHANNEL, BURST, 5, False, 0.0)
    rx.hold(pack_inner(CHANNEL, BURST, 9, 0, b"x"), True, 2)
    rx.new_session()  # the relay restarted: burst ids start again
    assert len(rx.split(pack_inner(CHANNEL, BURST, 5, 0, b"x")).frames) == 1
    assert rx.unheld(CHANNEL, BURST, 9) == (False, 0)


def test_malformed_frames_are_refused() -> None:
    rx = Reception()
    with pytest.raises(MalformedError):
        rx.split(b"short")
    broken = pack_inner(CHANNEL, BURST, 9, media.REDUNDANT, bytes([2, 1, 1, 0, 0, 5]) + b"p")
    with pytest.raises(MalformedError):
        rx.split(broken)


# --- hold / unheld ---------------------------------------------------------------------------


def test_hold_remembers_how_a_frame_came_until_it_is_opened() -> None:
    rx = Reception()
    rx.hold(pack_inner(CHANNEL, BURST, 3, 0, b"early"), True, 4)
    rx.hold(pack_inner(CHANNEL, BURST, 4, 0, b"early"), False, 2)
    assert rx.unheld(CHANNEL, BURST, 3) == (True, 4)
    assert rx.unheld(CHANNEL, BURST, 3) == (False, 0)  # popped: it is opened once
    assert rx.unheld(CHANNEL, BURST, 4) == (False, 2)
    assert rx.unheld(CHANNEL, BURST + 1, 4) == (False, 0)
    assert rx.unheld(CHANNEL + 1, BURST, 4) == (False, 0)


def test_hold_is_bounded_oldest_out() -> None:
    rx = Reception()
    kept = reception._HELD_KEPT
    for sequence in range(kept + 1):
        rx.hold(pack_inner(CHANNEL, BURST, sequence, 0, b"x"), True, 3)
    assert rx.unheld(CHANNEL, BURST, 0) == (False, 0)  # pushed out
    for sequence in range(1, kept + 1):
        assert rx.unheld(CHANNEL, BURST, sequence) == (True, 3)


# --- Receiver reports ------------------------------------------------------------------------


def test_no_report_without_a_hop_or_before_a_baseline() -> None:
    relay, radio = downlink()
    rx = Reception()
    heard(rx, [(0, 10.0)])
    assert rx.reports_due(None, 10.0) == []
    carry(relay, radio, 10, lost={2, 3})  # before the baseline: not this report's loss
    assert rx.reports_due(radio, 10.0) == []  # the baseline
    carry(relay, radio, 10, lost={5})
    heard(rx, [(1, 10.1)])
    (report,) = rx.reports_due(radio, 10.1)
    assert through_the_wire(report).loss_pct == pytest.approx(100 * 1 / 10)


def test_a_new_hop_session_starts_a_new_baseline() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    carry(relay, radio, 10, lost={4})
    relay2, radio2 = downlink(0x52)  # logged in again
    carry(relay2, radio2, 10, lost={1, 2})
    heard(rx, [(0, 1.0)])
    assert rx.reports_due(radio2, 1.0) == []
    carry(relay2, radio2, 4)
    (report,) = rx.reports_due(radio2, 1.1)
    assert report.loss_pct == 0.0


@pytest.mark.parametrize(
    ("count", "lost"),
    [
        (20, {3, 4, 10}),
        (20, set()),
        (50, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 30}),
        (10, {1, 3, 5, 7}),
        (3, {1}),
        (200, set(range(20, 120))),
    ],
)
def test_the_loss_is_the_exact_counter_gaps(count: int, lost: set[int]) -> None:
    relay, radio = downlink()
    rx = Reception()
    carry(relay, radio, 2)
    rx.reports_due(radio, 0.0)
    carry(relay, radio, count, lost=lost)
    heard(rx, [(0, 0.5)])
    (report,) = rx.reports_due(radio, 0.5)
    # Independently: the first datagram after the baseline is counter 2, so index 0 is
    # a gap after counter 1 like any other.
    received, missing = count - len(lost), len(lost)
    runs = sum(1 for i in lost if i - 1 not in lost)
    assert through_the_wire(report).loss_pct == pytest.approx(100 * missing / count)
    assert report.loss_pct == pytest.approx(100 * missing / (received + missing))
    assert report.loss_run == pytest.approx(mean_run(missing, runs))
    assert report.channel_id == CHANNEL


def test_worked_example_three_lost_in_two_runs() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    carry(relay, radio, 20, lost={3, 4, 10})
    heard(rx, [(0, 0.9)])
    (report,) = rx.reports_due(radio, 1.0)
    assert report.loss_pct == pytest.approx(15.0)  # 3 of 20
    assert report.loss_run == 1.0  # 3 lost in 2 runs: too few runs for a mean


def test_a_loss_is_seen_only_once_a_later_datagram_arrives() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    carry(relay, radio, 10, lost={8, 9})  # the last two: no gap visible yet
    heard(rx, [(0, 0.5)])
    (first,) = rx.reports_due(radio, 0.5)
    assert first.loss_pct == 0.0
    radio.open(relay.seal(pack_inner(CHANNEL, BURST, 10, 0, b"v")), RELAY)
    heard(rx, [(25, 1.5)])
    (second,) = rx.reports_due(radio, 1.5)
    assert second.loss_pct == pytest.approx(100 * 2 / 3)  # 2 lost, 1 received since
    assert second.loss_run == 1.0  # one run of two: no mean yet


def test_a_late_datagram_is_not_lost() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    sealed = carry(relay, radio, 10, lost={4, 6})
    radio.open(sealed[4], RELAY)  # reordered, not lost
    heard(rx, [(0, 0.5)])
    (report,) = rx.reports_due(radio, 0.5)
    assert report.loss_pct == pytest.approx(100 * 1 / 10)
    through_the_wire(report)


def test_one_report_per_channel_heard_within_the_window() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    carry(relay, radio, 10, lost={5})
    now = 10.0
    heard(rx, [(0, now - 0.2)], channel=1)
    heard(rx, [(0, now - RECEIVING_WINDOW)], channel=2)  # just within
    heard(rx, [(0, now - RECEIVING_WINDOW - 0.01)], channel=3)  # too long ago
    reports = rx.reports_due(radio, now)
    assert sorted(r.channel_id for r in reports) == [1, 2]
    assert all(through_the_wire(r).loss_pct == pytest.approx(10.0) for r in reports)


def test_at_most_one_report_per_interval_and_nothing_is_lost_in_between() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    carry(relay, radio, 10)
    heard(rx, [(0, 1.0)])
    (first,) = rx.reports_due(radio, 1.0)
    assert first.loss_pct == 0.0
    carry(relay, radio, 10, lost={2})
    heard(rx, [(25, 1.5)])
    assert rx.reports_due(radio, 1.5) == []
    assert rx.reports_due(radio, 1.0 + REPORT_INTERVAL - 0.01) == []
    carry(relay, radio, 10, lost={7, 8})
    heard(rx, [(50, 1.9)])
    (second,) = rx.reports_due(radio, 1.0 + REPORT_INTERVAL)
    assert second.loss_pct == pytest.approx(100 * 3 / 20)  # both halves, none counted twice
    assert second.loss_run == 1.0  # 3 lost in 2 runs
    heard(rx, [(75, 2.4)])
    assert rx.reports_due(radio, 2.5) == []


def test_a_channel_newly_heard_reports_without_waiting_for_the_others() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    heard(rx, [(0, 1.0)], channel=1)
    assert [r.channel_id for r in rx.reports_due(radio, 1.0)] == [1]
    carry(relay, radio, 4, lost={1})
    heard(rx, [(0, 1.3)], channel=2)
    (report,) = rx.reports_due(radio, 1.3)
    assert report.channel_id == 2
    assert report.loss_pct == pytest.approx(25.0)
    heard(rx, [(50, 2.0)], channel=1)
    (again,) = rx.reports_due(radio, 2.0)
    assert again.channel_id == 1 and again.loss_pct == 0.0


def test_perfectly_spaced_voice_has_no_jitter() -> None:
    _, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    heard(rx, [(s, 100.0 + 0.035 + s * FRAME_S) for s in range(50)])
    (report,) = rx.reports_due(radio, 101.0)
    assert report.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_jitter_worked_example() -> None:
    _, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    # Frame 1 comes 16 ms late: J = 16 / 16 = 1 ms. Frame 2 keeps frame 1's delay (D = 0):
    # J = 1 - 1/16 = 0.9375 ms.
    heard(rx, [(0, 1.0), (1, 1.0 + 0.020 + 0.016)])
    (report,) = rx.reports_due(radio, 1.1)
    assert report.jitter_ms == pytest.approx(1.0)
    again = Reception()
    again.reports_due(radio, 0.0)
    heard(again, [(0, 1.0), (1, 1.0 + 0.020 + 0.016), (2, 1.0 + 0.040 + 0.016)])
    (later,) = again.reports_due(radio, 1.1)
    assert later.jitter_ms == pytest.approx(0.9375)


@given(st.lists(st.floats(0.0, 0.2), min_size=2, max_size=80))
@settings(deadline=None)
def test_jitter_follows_rfc_3550(delays: list[float]) -> None:
    _, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    arrivals = [(s, 10.0 + s * FRAME_S + delay) for s, delay in enumerate(delays)]
    heard(rx, arrivals)
    (report,) = rx.reports_due(radio, arrivals[-1][1])
    assert through_the_wire(report).jitter_ms == pytest.approx(
        1000 * rfc3550_jitter(arrivals), abs=1e-9
    )
    if any(abs(a - b) > 1e-6 for a, b in itertools.pairwise(delays)):
        assert report.jitter_ms > 0


def test_jitter_restarts_with_each_burst() -> None:
    # BUG: Reception keeps one RFC 3550 transit per *channel*, so the first frame of the
    # next burst is compared with the last frame of the previous one: the silence between
    # them (here 5 s) counts as one 5 s delay jump, J += 5 / 16 s. Each burst below is
    # perfectly spaced; ChannelFeedback (the relay) restarts at talk_started, this does not.
    # The talker's numbering runs on across bursts (ptt_client.talk_frames).
    _, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    for s in range(50):
        rx.taken(CHANNEL, BURST, s, False, 10.0 + s * FRAME_S)
    for s in range(50, 55):
        rx.taken(CHANNEL, BURST + 1, s, False, 16.0 + (s - 50) * FRAME_S)
    (report,) = rx.reports_due(radio, 16.1)
    assert report.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_burst_statements_do_not_count_for_jitter() -> None:
    _, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    heard(rx, [(s, 5.0 + s * FRAME_S) for s in range(10)])
    rx.taken(CHANNEL, BURST, STATEMENTS, False, 5.5)  # a statement, nowhere near 20 ms steps
    heard(rx, [(s, 5.0 + s * FRAME_S) for s in range(10, 20)])
    rx.taken(CHANNEL, BURST, STATEMENTS + 1, False, 5.9)
    (report,) = rx.reports_due(radio, 6.0)
    assert report.jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert rx.split(pack_inner(CHANNEL, BURST, STATEMENTS, SIGNATURE, b"sig")).frames == ()


def test_repeats_do_not_count_for_jitter() -> None:
    _, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    heard(rx, [(s, 5.0 + s * FRAME_S) for s in range(10) if s != 6])
    rx.taken(CHANNEL, BURST, 6, True, 5.0 + 8 * FRAME_S)  # frame 6 out of datagram 8
    (report,) = rx.reports_due(radio, 5.5)
    assert report.jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert rx.rescued == 1


def test_values_stay_inside_the_report_limits() -> None:
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    # Three runs of 1500, each followed by one datagram that arrives.
    lost = {i for i in range(4503) if i % 1501 != 1500}
    carry(relay, radio, 4503, lost=lost)
    heard(rx, [(0, 0.0), (1, 1000.0)])  # an arrival 1000 s late: J = 62.5 s
    (report,) = rx.reports_due(radio, 1000.0)
    decoded = through_the_wire(report)
    received, missing, runs = gaps(4503, lost)
    assert (missing, runs) == (4500, 3)
    assert decoded.jitter_ms == control.MAX_JITTER_MS
    assert decoded.loss_run == control.MAX_LOSS_RUN
    assert decoded.loss_pct == pytest.approx(100 * missing / (received + missing))


@given(
    st.integers(1, 120).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=n))
    ),
    st.lists(st.floats(0.0, 50.0), min_size=1, max_size=20),
)
@settings(max_examples=60, deadline=None)
def test_every_report_decodes_and_matches_the_gaps(
    case: tuple[int, set[int]], delays: list[float]
) -> None:
    count, lost = case
    relay, radio = downlink()
    rx = Reception()
    rx.reports_due(radio, 0.0)
    carry(relay, radio, count, lost=lost)
    arrivals = [(s, 1.0 + s * FRAME_S + d) for s, d in enumerate(delays)]
    heard(rx, arrivals)
    (report,) = rx.reports_due(radio, arrivals[-1][1])
    decoded = through_the_wire(report)
    received, missing, runs = gaps(count, lost)
    expected = 100 * missing / (received + missing) if received + missing else 0.0
    assert decoded.loss_pct == pytest.approx(expected)
    assert decoded.loss_run == pytest.approx(mean_run(missing, runs))
    assert decoded.jitter_ms == pytest.approx(
        min(control.MAX_JITTER_MS, 1000 * rfc3550_jitter(arrivals)), abs=1e-9
    )
