"""Jitter buffer and talker choice, driven with explicit arrival and playout times."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptt_client.jitter import JitterBuffer, JitterError, Output, Play, Recover
from ptt_client.mixer import Candidate, PriorityPicker, StreamMixer

F = 0.020  # frame duration, seconds
WRAP = 1 << 32


def payload(seq: int) -> bytes:
    return b"frame-%d" % seq


def simulate(
    jb: JitterBuffer,
    arrivals: Iterable[tuple[float, int]],
    until: float,
    tick: float = 0.001,
    end_after_last: bool = False,
) -> list[tuple[float, Output]]:
    """Push each ``(time, sequence)`` when its time comes and pop every ``tick`` until
    ``until``; returns ``(time, output)`` for every instruction."""
    pending = sorted(arrivals)
    out: list[tuple[float, Output]] = []
    for step in range(round(until / tick) + 1):
        now = step * tick
        while pending and pending[0][0] <= now + 1e-12:
            _, seq = pending.pop(0)
            jb.push(seq, payload(seq), now)
            if end_after_last and not pending:
                jb.end_burst()
        while (item := jb.pop(now)) is not None:
            out.append((now, item))
    return out


def steady(seqs: Iterable[int], start: float = 0.0) -> list[tuple[float, int]]:
    """Arrivals without jitter: the i-th sequence at start + i frames."""
    return [(start + i * F, s) for i, s in enumerate(seqs)]


def kinds(out: list[tuple[float, Output]]) -> list[tuple[str, int]]:
    return [(type(o).__name__, o.sequence) for _, o in out]


# ----------------------------------------------------------------------------- basics


def test_in_order_packets_play_after_the_initial_delay_one_per_frame() -> None:
    jb = JitterBuffer(initial_delay_ms=60)
    out = simulate(jb, steady(range(10)), until=1.0, end_after_last=True)
    assert kinds(out) == [("Play", s) for s in range(10)]
    assert [o.payload for _, o in out if isinstance(o, Play)] == [payload(s) for s in range(10)]
    times = [t for t, _ in out]
    assert times[0] == pytest.approx(0.060)
    assert np.allclose(np.diff(times), F)
    assert jb.state == "idle"
    assert (jb.stats.received, jb.stats.played, jb.stats.lost) == (10, 10, 0)


def test_nothing_plays_before_the_target_delay() -> None:
    jb = JitterBuffer(initial_delay_ms=80)
    jb.push(0, payload(0), 1.000)
    states = [jb.state]
    assert jb.pop(1.079) is None
    assert jb.next_due() == pytest.approx(1.080)
    assert jb.pop(1.080) == Play(0, payload(0))
    states.append(jb.state)
    assert states == ["buffering", "playing"]


def test_reordered_packets_play_in_sequence_order() -> None:
    jb = JitterBuffer()
    arrivals = [(0.000, 0), (0.020, 2), (0.030, 1), (0.060, 4), (0.061, 3), (0.080, 5)]
    out = simulate(jb, arrivals, until=0.5, end_after_last=True)
    assert kinds(out) == [("Play", s) for s in range(6)]
    assert jb.stats.lost == 0


def test_a_lost_frame_with_its_successor_present_is_recovered() -> None:
    jb = JitterBuffer()
    out = simulate(jb, steady([0, 1, 3, 4]), until=0.5, end_after_last=True)
    # (the 4 arrivals cover 5 frames of sender time: 3 arrives at 40 ms, before it is due)
    assert kinds(out) == [("Play", 0), ("Play", 1), ("Recover", 2), ("Play", 3), ("Play", 4)]
    recover = out[2][1]
    assert isinstance(recover, Recover) and recover.next_payload == payload(3)
    assert (jb.stats.lost, jb.stats.recovered, jb.stats.concealed) == (1, 1, 0)


def test_two_lost_frames_give_conceal_then_recover() -> None:
    jb = JitterBuffer()
    out = simulate(jb, steady([0, 1, 4, 5]), until=0.5, end_after_last=True)
    assert kinds(out) == [
        ("Play", 0),
        ("Play", 1),
        ("Conceal", 2),
        ("Recover", 3),
        ("Play", 4),
        ("Play", 5),
    ]
    assert (jb.stats.lost, jb.stats.recovered, jb.stats.concealed) == (2, 1, 1)


def test_duplicates_are_dropped_before_and_after_playing() -> None:
    jb = JitterBuffer()
    arrivals = [(0.0, 0), (0.02, 1), (0.021, 1), (0.04, 2), (0.2, 0), (0.2, 2)]
    out = simulate(jb, arrivals, until=0.5)
    assert [s for name, s in kinds(out) if name == "Play"] == [0, 1, 2]
    assert jb.stats.duplicates == 3
    assert jb.stats.received == 3


def test_a_packet_arriving_after_its_frame_was_due_is_late() -> None:
    jb = JitterBuffer(initial_delay_ms=60)
    # Frame 2 is due at 60 + 40 = 100 ms; its packet comes at 130 ms.
    arrivals = [(0.0, 0), (0.02, 1), (0.06, 3), (0.13, 2), (0.08, 4)]
    out = simulate(jb, arrivals, until=0.5, end_after_last=False)
    assert kinds(out)[:5] == [("Play", 0), ("Play", 1), ("Recover", 2), ("Play", 3), ("Play", 4)]
    assert jb.stats.late == 1
    assert all(not (isinstance(o, Play) and o.sequence == 2) for _, o in out)


def test_running_dry_conceals_briefly_then_stops() -> None:
    jb = JitterBuffer(max_conceal_frames=3)
    out = simulate(jb, steady(range(5)), until=1.0)  # no end_burst: the talker vanished
    assert kinds(out) == [("Play", s) for s in range(5)] + [("Conceal", s) for s in (5, 6, 7)]
    assert jb.state == "idle"
    assert jb.stats.underruns == 1


def test_end_burst_plays_out_the_buffer_without_a_concealment_tail() -> None:
    jb = JitterBuffer()
    for s in range(4):
        jb.push(s, payload(s), s * F)
    jb.end_burst()
    out = simulate(jb, [], until=0.5)
    assert kinds(out) == [("Play", s) for s in range(4)]
    assert jb.state == "idle" and jb.stats.underruns == 0


def test_talker_resuming_after_a_pause_restarts_with_buffering() -> None:
    jb = JitterBuffer(initial_delay_ms=60)
    first = steady(range(5))
    second = steady(range(10, 15), start=2.0)  # frames 5-9 never sent (or lost)
    out = simulate(jb, first + second, until=3.0)
    plays = [(t, o.sequence) for t, o in out if isinstance(o, Play)]
    assert [s for _, s in plays] == [*range(5), *range(10, 15)]
    resumed_at = next(t for t, s in plays if s == 10)
    # Buffering again: the target delay (still the initial 60 ms: fewer than 10 packets
    # measured) after the spurt's first packet.
    assert resumed_at == pytest.approx(2.0 + 0.060)
    assert jb.stats.skipped == 5 - 3  # 5, 6, 7 were concealed; 8, 9 skipped while idle


def test_after_an_ended_burst_the_next_may_restart_its_numbering() -> None:
    jb = JitterBuffer()
    simulate(jb, steady(range(300, 310)), until=0.5, end_after_last=True)
    assert jb.state == "idle"
    out = simulate(jb, steady(range(3), start=1.0), until=1.5, end_after_last=True)
    assert kinds(out) == [("Play", 0), ("Play", 1), ("Play", 2)]
    assert jb.stats.late == 0


def test_reset_forgets_the_numbering() -> None:
    jb = JitterBuffer()
    simulate(jb, steady(range(100, 105)), until=0.3)
    jb.reset()
    assert jb.state == "idle" and jb.buffered == 0
    out = simulate(jb, steady(range(3), start=0.4), until=0.8, end_after_last=True)
    assert kinds(out) == [("Play", 0), ("Play", 1), ("Play", 2)]


# ------------------------------------------------------------------------ adaptation


def jittered(
    count: int, jitter_s: float, start: float, first_seq: int, seed: int
) -> list[tuple[float, int]]:
    """Arrivals delayed by uniform random jitter, except the first (on time, so a spurt's
    playout is anchored without luck)."""
    rng = np.random.default_rng(seed)
    delays = [0.0, *rng.uniform(0, jitter_s, count - 1)]
    return [(start + i * F + float(delays[i]), first_seq + i) for i in range(count)]


def test_target_delay_grows_with_jitter_and_shrinks_back() -> None:
    jb = JitterBuffer(initial_delay_ms=20, window=100)
    simulate(jb, steady(range(50)), until=1.1)
    calm = jb.target_delay_ms
    assert calm == pytest.approx(20.0)  # no jitter: the minimum
    # 80 ms of uniform jitter: the 95th percentile spread is ~76 ms, plus one frame.
    simulate(jb, jittered(150, 0.080, start=2.0, first_seq=50, seed=1), until=5.5)
    rough = jb.target_delay_ms
    assert 60.0 < rough <= 120.0
    assert jb.stats.jitter_ms > 10.0
    # Calm again: once the window holds only calm packets, the target falls back.
    simulate(jb, steady(range(200, 320), start=6.0), until=9.0)
    assert jb.target_delay_ms < 25.0
    assert jb.stats.jitter_ms < rough / 2


def test_more_jitter_means_a_longer_playout_delay_and_no_late_packets() -> None:
    """Adaptation pays off: the second spurt, started with the learned target, loses nothing."""
    jb = JitterBuffer(initial_delay_ms=20)
    spurt = jittered(100, 0.060, start=0.0, first_seq=0, seed=2)
    simulate(jb, spurt, until=2.5, end_after_last=True)
    late_first = jb.stats.late
    assert late_first > 0  # 20 ms of buffer against up to 60 ms of jitter
    # The learned target covers the whole 60 ms spread (95th percentile + one frame)...
    assert jb.target_delay_ms > 60.0
    simulate(
        jb, jittered(100, 0.060, start=3.0, first_seq=100, seed=3), until=5.5, end_after_last=True
    )
    # ... so with the first packet on time, no packet of the next spurt can be late.
    assert jb.stats.late == late_first
    assert jb.stats.received == 200 - late_first


def test_target_delay_is_clamped() -> None:
    wild = JitterBuffer()
    simulate(wild, jittered(60, 1.0, start=0.0, first_seq=0, seed=4), until=3.0)
    assert wild.target_delay_ms == 200.0
    calm = JitterBuffer(initial_delay_ms=5)
    simulate(calm, steady(range(30)), until=1.0)
    assert calm.target_delay_ms == 20.0
    custom = JitterBuffer(min_delay_ms=40, max_delay_ms=80)
    simulate(custom, jittered(60, 1.0, start=0.0, first_seq=0, seed=5), until=3.0)
    assert custom.target_delay_ms == 80.0


def test_a_network_stall_does_not_leave_a_long_delay_behind() -> None:
    """Packets held up 0.4 s and then delivered at once must not all be played late."""
    jb = JitterBuffer(initial_delay_ms=60, max_delay_ms=200)
    arrivals = steady(range(10))
    arrivals += [(0.8, s) for s in range(10, 40)]  # sent 0.2-0.78 s, all delivered at 0.8 s
    arrivals += [(s * F, s) for s in range(40, 100)]  # on time again
    arrival_of = {s: t for t, s in arrivals}
    out = simulate(jb, arrivals, until=3.0)
    waits = [t - arrival_of[o.sequence] for t, o in out if isinstance(o, Play)]
    assert max(waits) <= 0.200 + F + 1e-9
    assert jb.stats.discarded > 0
    assert [o.sequence for _, o in out if isinstance(o, Play)][-1] == 99


# ------------------------------------------------------------------------ wrap-around


def test_sequence_numbers_wrap_around_u32() -> None:
    jb = JitterBuffer()
    seqs = [(WRAP - 3 + i) % WRAP for i in range(6)]  # ..., 2^32-1, 0, 1, 2
    arrivals = steady(seqs)
    arrivals[2], arrivals[3] = (arrivals[3][0], seqs[2]), (arrivals[2][0], seqs[3])  # reorder
    out = simulate(jb, arrivals, until=0.5, end_after_last=True)
    assert kinds(out) == [("Play", s) for s in seqs]


def test_loss_across_the_wrap_is_recovered() -> None:
    jb = JitterBuffer()
    out = simulate(jb, steady([WRAP - 2, WRAP - 1, 1, 2]), until=0.5, end_after_last=True)
    assert kinds(out) == [
        ("Play", WRAP - 2),
        ("Play", WRAP - 1),
        ("Recover", 0),
        ("Play", 1),
        ("Play", 2),
    ]


# ------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("sequence", "data", "now"),
    [
        (-1, b"x", 0.0),
        (WRAP, b"x", 0.0),
        ("1", b"x", 0.0),
        (1, "x", 0.0),
        (1, b"x", float("nan")),
        (1, b"x", "0.1"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(
    sequence: object, data: object, now: float
) -> None:
    jb = JitterBuffer()
    jb.push(0, b"first", 0.0)
    before = (jb.stats.received, jb.buffered, jb.state, jb.target_delay_ms)
    with pytest.raises(JitterError):
        jb.push(sequence, data, now)  # type: ignore[arg-type]
    assert (jb.stats.received, jb.buffered, jb.state, jb.target_delay_ms) == before
    with pytest.raises(JitterError):
        jb.pop(float("inf"))


def test_packets_far_ahead_of_the_playout_are_rejected() -> None:
    jb = JitterBuffer(capacity=50)
    simulate(jb, steady(range(3)), until=0.1)
    assert jb.state == "playing"
    assert not jb.push(1_000, b"far", 0.1)
    assert jb.stats.rejected == 1
    assert jb.buffered <= 50


@pytest.mark.parametrize(
    "kwargs",
    [{"frame_ms": 0}, {"min_delay_ms": 0}, {"min_delay_ms": 300}, {"window": 1}, {"capacity": 1}],
)
def test_bad_configuration_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(JitterError):
        JitterBuffer(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(
    base=st.sampled_from([0, 1_000, WRAP - 25]),
    packets=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=59),  # sequence offset
            st.floats(min_value=0.0, max_value=0.3),  # network delay
        ),
        max_size=80,
    ),
    pop_step=st.sampled_from([0.001, 0.007, 0.02, 0.05]),
    end=st.booleans(),
)
def test_any_arrival_pattern_plays_each_frame_at_most_once_in_order(
    base: int, packets: list[tuple[int, float]], pop_step: float, end: bool
) -> None:
    jb = JitterBuffer()
    arrivals = [(off * F + delay, (base + off) % WRAP) for off, delay in packets]
    out = simulate(jb, arrivals, until=2.5, tick=pop_step, end_after_last=end)
    sequences = [o.sequence for _, o in out]
    steps = [(b - a) % WRAP for a, b in itertools.pairwise(sequences)]
    assert all(0 < step < 200 for step in steps), "instructions go forward, one frame each"
    played = [o.sequence for _, o in out if isinstance(o, Play)]
    assert len(played) == len(set(played))
    for _, o in out:
        if isinstance(o, Play):
            assert o.payload == payload(o.sequence)
        elif isinstance(o, Recover):
            assert o.next_payload == payload((o.sequence + 1) % WRAP)
    stats = jb.stats
    assert stats.received + stats.duplicates + stats.late + stats.rejected == len(packets)
    assert stats.received == stats.played + stats.discarded + jb.buffered
    assert stats.lost == stats.recovered + stats.concealed
    assert 20.0 <= stats.target_delay_ms <= 200.0


# ------------------------------------------------------------------------ talker choice


def test_priority_picker_prefers_priority_then_the_earlier_start() -> None:
    pick = PriorityPicker.pick
    assert pick([]) is None
    assert pick([Candidate("officer", 1, 0.0), Candidate("dispatch", 2, 5.0)]) == "dispatch"
    assert pick([Candidate("b", 1, 2.0), Candidate("a", 1, 1.0)]) == "a"
    assert pick([Candidate("a", 1, 1.0), Candidate("b", 1, 1.0)]) == "a"  # stable on a full tie
    assert pick([Candidate("emergency", 9, 9.0), Candidate("x", 1, 0.0)]) == "emergency"


def mixer_run(
    mixer: StreamMixer[str],
    arrivals: list[tuple[float, str, int, int]],
    until: float,
    ends: dict[str, float] | None = None,
) -> list[tuple[float, str, Output]]:
    pending = sorted(arrivals)
    ends = dict(ends or {})
    out = []
    for step in range(round(until / 0.001) + 1):
        now = step * 0.001
        while pending and pending[0][0] <= now + 1e-12:
            _, talker, seq, priority = pending.pop(0)
            mixer.push(talker, seq, payload(seq), now, priority=priority)
        for talker, when in list(ends.items()):
            if when <= now:
                mixer.end_burst(talker)
                del ends[talker]
        while (item := mixer.pop(now)) is not None:
            out.append((now, item[0], item[1]))
    return out


def test_mixer_lets_a_higher_priority_talker_cut_in_and_then_hands_back() -> None:
    mixer: StreamMixer[str] = StreamMixer(initial_delay_ms=40)
    officer = [(i * F, "officer", i, 1) for i in range(50)]  # 0-1 s
    dispatch = [(0.3 + i * F, "dispatch", 500 + i, 2) for i in range(10)]  # 0.3-0.5 s
    out = mixer_run(mixer, officer + dispatch, until=1.5, ends={"dispatch": 0.5, "officer": 1.0})
    talkers = [talker for _, talker, _ in out]
    # officer ... dispatch ... officer, never interleaved frame by frame
    changes = [b for a, b in itertools.pairwise(talkers) if a != b]
    assert changes == ["dispatch", "officer"]
    assert [o.sequence for _, t, o in out if t == "dispatch"] == list(range(500, 510))
    assert mixer.muted_frames("officer") > 0
    # The officer comes back at the live point, not where it was cut off.
    resumed = next(
        i for i, t in enumerate(talkers) if t == "officer" and i > talkers.index("dispatch")
    )
    resumed_time, _, resumed_out = out[resumed]
    assert resumed_out.sequence * F + 0.040 == pytest.approx(resumed_time, abs=0.002)


def test_mixer_keeps_the_first_talker_on_a_priority_tie() -> None:
    mixer: StreamMixer[str] = StreamMixer()
    first = [(i * F, "alice", i, 1) for i in range(20)]
    second = [(0.05 + i * F, "bob", i, 1) for i in range(20)]
    out = mixer_run(mixer, first + second, until=0.8, ends={"alice": 0.4, "bob": 0.45})
    talkers = [t for _, t, _ in out]
    assert talkers[: talkers.index("bob")] == ["alice"] * 20
    assert mixer.muted_frames("bob") > 0
    assert mixer.current is None  # both finished


def test_mixer_forgets_long_silent_talkers() -> None:
    mixer: StreamMixer[str] = StreamMixer(idle_timeout_s=5.0)
    mixer_run(mixer, [(i * F, "alice", i, 0) for i in range(5)], until=0.5, ends={"alice": 0.1})
    assert mixer.talkers() == ["alice"]
    assert mixer.pop(10.0) is None
    assert mixer.talkers() == []


# --- repeats (issue 14) ---------------------------------------------------------------------


def _play_times(out: list[tuple[float, Output]]) -> dict[int, float]:
    return {o.sequence: t for t, o in out if isinstance(o, Play)}


def test_a_repeat_fills_a_lost_frame_in_its_slot_and_is_counted_rescued() -> None:
    jb = JitterBuffer(initial_delay_ms=20, min_delay_ms=20)
    out: list[tuple[float, Output]] = []
    # Frame 3's own datagram is lost; datagram 4 repeats it (reach 1).
    for n in range(8):
        now = n * F
        if n == 4:
            jb.push(3, payload(3), now, repeat=True, reach=1)
        if n != 3:
            jb.push(n, payload(n), now, reach=1)
        while (item := jb.pop(now)) is not None:
            out.append((now, item))
    jb.end_burst()
    for step in range(1, 200):
        now = 8 * F + step * 0.001
        while (item := jb.pop(now)) is not None:
            out.append((now, item))
    plays = [o for _, o in out if isinstance(o, Play)]
    assert [o.sequence for o in plays][:8] == list(range(8))
    assert [o.rescued for o in plays][:8] == [False] * 3 + [True] + [False] * 4
    assert jb.stats.rescued == 1 and jb.stats.concealed == 0 and jb.stats.recovered == 0
    times = _play_times(out)
    assert times[3] - times[2] == pytest.approx(F, abs=0.0015)  # in its own slot


def test_repeats_do_not_count_as_network_jitter() -> None:
    # Every fifth frame's own datagram is lost; it comes as a repeat 40 ms late. Measured,
    # those arrivals would look like 40 ms of jitter and raise the target for nothing.
    plain, repeated = JitterBuffer(), JitterBuffer()
    for n in range(60):
        if n % 5 != 2:
            plain.push(n, payload(n), n * F)
            repeated.push(n, payload(n), n * F)
        if n % 5 == 4:
            repeated.push(n - 2, payload(n - 2), n * F, repeat=True, reach=2)
    assert repeated.stats.received == plain.stats.received + 12  # the repeats were kept
    assert repeated.stats.jitter_ms == plain.stats.jitter_ms
    assert repeated.target_delay_ms == plain.target_delay_ms


def test_the_talkers_reach_delays_the_spurt_once_and_keeps_its_frames() -> None:
    reach = 4
    delays = {}
    for announced in (0, reach):
        jb = JitterBuffer(initial_delay_ms=20, min_delay_ms=20)
        out = simulate_with(jb, [(n * F, n, False, announced) for n in range(60)], until=2.0)
        first = min(t for t, o in out if isinstance(o, Play))
        delays[announced] = first
        assert jb.stats.discarded == 0  # frames held for repeats are not a backlog to trim
        assert [o.sequence for _, o in out if isinstance(o, Play)] == list(range(60))
    # The target's one frame of slack is replaced by the reach: (reach - 1) frames later.
    assert delays[reach] - delays[0] == pytest.approx((reach - 1) * F, abs=0.0015)


def test_a_slow_first_packet_does_not_delay_the_whole_spurt() -> None:
    # Frame 0 is 30 ms late; frames 1.. come on time. The spurt is timed from frame 1.
    arrivals = [(0.030, 0, False, 2)] + [(n * F, n, False, 2) for n in range(1, 30)]
    jb = JitterBuffer(initial_delay_ms=40, min_delay_ms=20)
    out = simulate_with(jb, arrivals, until=1.0)
    times = _play_times(out)
    slow = JitterBuffer(initial_delay_ms=40, min_delay_ms=20)
    only_first = simulate_with(slow, [(0.030, 0, False, 2)], until=1.0)
    assert times[1] - F < _play_times(only_first)[0]  # earlier than the slow packet's timing
    assert times[1] - times[0] == pytest.approx(F, abs=0.0015)


def simulate_with(
    jb: JitterBuffer,
    arrivals: list[tuple[float, int, bool, int]],
    until: float,
    tick: float = 0.001,
) -> list[tuple[float, Output]]:
    """:func:`simulate` with ``(time, sequence, is_repeat, reach)`` arrivals."""
    pending = sorted(arrivals)
    out: list[tuple[float, Output]] = []
    for step in range(round(until / tick) + 1):
        now = step * tick
        while pending and pending[0][0] <= now + 1e-12:
            _, seq, repeat, reach = pending.pop(0)
            jb.push(seq, payload(seq), now, repeat=repeat, reach=reach)
        while (item := jb.pop(now)) is not None:
            out.append((now, item))
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=120),
    st.sampled_from((0, 20, 50, 90, 95, 100)),
)
def test_the_hand_made_percentile_is_numpys(values: list[float], q: int) -> None:
    from ptt_client.jitter import _percentile

    assert _percentile(sorted(values), q) == pytest.approx(
        float(np.percentile(values, q)), rel=1e-12, abs=1e-9
    )
