"""Radio tones: distinct in length and pitch, click-free, codec-ready."""

from __future__ import annotations

import itertools
import os

import numpy as np
import pytest

from ptt_client.tones import (
    ALERT_RETONE_S,
    MAX_QUEUED_TONE_S,
    TONE_SPECS,
    Tone,
    ToneQueue,
    deny_tone,
    emergency_tone,
    roger_beep,
    talk_permit_tone,
    tone,
    tone_frames,
)

RATE = 48_000


def dominant_hz(pcm: np.ndarray, count: int = 1) -> list[float]:
    """The ``count`` strongest spectral peaks, strongest first (Hz)."""
    x = pcm.astype(np.float64)
    size = 1 << 18  # zero-padded for ~0.2 Hz bins
    mags = np.abs(np.fft.rfft(x * np.hanning(len(x)), size))
    freqs = np.fft.rfftfreq(size, 1 / RATE)
    peaks = np.flatnonzero((mags[1:-1] > mags[:-2]) & (mags[1:-1] >= mags[2:])) + 1
    best = peaks[np.argsort(mags[peaks])[::-1][:count]]
    return [float(freqs[i]) for i in best]


def bursts(pcm: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) sample ranges where the tone sounds (separated by >= 5 ms of silence)."""
    loud = np.abs(pcm) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    merged: list[tuple[int, int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < RATE // 200:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


ALL = list(Tone)


@pytest.mark.parametrize("kind", ALL)
def test_tones_are_48khz_mono_int16_of_the_specified_length(kind: Tone) -> None:
    pcm = tone(kind)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    spec_ms = sum(beep.duration_ms for beep in TONE_SPECS[kind])
    assert len(pcm) == pytest.approx(spec_ms * RATE / 1000, abs=len(TONE_SPECS[kind]))


def test_durations_differ() -> None:
    lengths = {kind: len(tone(kind)) / RATE for kind in ALL}
    assert len(set(lengths.values())) == len(ALL)
    # Permit and roger are short (they sit on the talk path); the alert is the longest.
    assert lengths[Tone.TALK_PERMIT] <= 0.2 and lengths[Tone.ROGER] <= 0.2
    assert max(lengths, key=lengths.__getitem__) is Tone.EMERGENCY


def test_dominant_frequencies_differ_and_match_the_design() -> None:
    measured = {
        Tone.TALK_PERMIT: dominant_hz(talk_permit_tone()),
        Tone.DENY: dominant_hz(deny_tone()),
        Tone.ROGER: dominant_hz(roger_beep()),
        Tone.EMERGENCY: dominant_hz(emergency_tone(), 2),
    }
    for kind, peaks in measured.items():
        designed = sorted({b.frequency_hz for b in TONE_SPECS[kind] if b.frequency_hz > 0})
        assert sorted(peaks) == pytest.approx(designed, abs=2.0), kind
    firsts = [peaks[0] for peaks in measured.values()]
    for a, b in itertools.combinations(firsts, 2):
        assert abs(a - b) > 100, "each tone needs its own pitch"
    # Deny is the low "bonk", roger the high beep.
    assert measured[Tone.DENY][0] < min(measured[Tone.TALK_PERMIT][0], measured[Tone.ROGER][0])
    assert measured[Tone.ROGER][0] > measured[Tone.TALK_PERMIT][0]


def test_rhythms_differ() -> None:
    assert len(bursts(talk_permit_tone())) == 3
    assert len(bursts(deny_tone())) == 1
    assert len(bursts(roger_beep())) == 1
    # The alert warbles: each 125 ms segment alternates between its two pitches.
    pcm = emergency_tone()
    segment = RATE // 8
    pitches = [round(dominant_hz(pcm[i : i + segment])[0]) for i in range(0, len(pcm), segment)]
    assert len(pitches) == 8
    assert len(set(pitches[::2])) == 1 and len(set(pitches[1::2])) == 1
    assert pitches[0] != pitches[1]


@pytest.mark.parametrize("kind", ALL)
def test_tones_start_and_stop_without_clicks_or_clipping(kind: Tone) -> None:
    pcm = tone(kind).astype(np.int32)
    peak = np.abs(pcm).max()
    assert 0.1 * 32767 < peak < 32767
    edge = RATE // 1000  # first and last millisecond: still ramping up / down
    assert np.abs(pcm[:edge]).max() < 0.2 * peak
    assert np.abs(pcm[-edge:]).max() < 0.2 * peak
    # No jump between neighbouring samples beyond what the highest sine can do.
    top_hz = max(b.frequency_hz for b in TONE_SPECS[kind])
    assert np.abs(np.diff(pcm)).max() <= 2 * np.pi * top_hz / RATE * peak * 1.01 + 1


def test_emergency_is_louder_than_the_other_tones() -> None:
    rms = {k: float(np.sqrt(np.mean(tone(k).astype(np.float64) ** 2))) for k in ALL}
    assert max(rms, key=rms.__getitem__) is Tone.EMERGENCY


def test_shared_tones_cannot_be_modified() -> None:
    pcm = tone(Tone.ROGER)
    with pytest.raises(ValueError):
        pcm[0] = 1
    assert tone(Tone.ROGER) is pcm


@pytest.mark.parametrize("frame_ms", [10, 20, 60])
def test_tone_frames_are_codec_sized_and_padded(frame_ms: int) -> None:
    size = RATE * frame_ms // 1000
    frames = tone_frames(Tone.TALK_PERMIT, frame_ms)
    assert all(f.shape == (size,) and f.dtype == np.int16 for f in frames)
    joined = np.concatenate(frames)
    pcm = tone(Tone.TALK_PERMIT)
    assert len(joined) - len(pcm) < size
    assert np.array_equal(joined[: len(pcm)], pcm)
    assert not joined[len(pcm) :].any()


# --- the tone queue: coalesced, bounded, behind voice (issue 9 section 3) --------------------


def drain(queue: ToneQueue) -> list[np.ndarray]:
    frames = []
    while (frame := queue.next_frame()) is not None:
        frames.append(frame)
    return frames


def test_a_flood_of_alerts_with_fresh_ids_queues_one_emergency_tone() -> None:
    queue = ToneQueue()
    # 300 alerts in 0.27 s, each with its own id: 299 s of tone before the fix.
    accepted = [queue.add(Tone.EMERGENCY, i * 0.0009, os.urandom(16)) for i in range(300)]
    assert accepted.count(True) == 1 and accepted[0]
    assert queue.queued_s == pytest.approx(len(tone_frames(Tone.EMERGENCY)) * 0.02)
    assert queue.stats.coalesced == 299
    played = np.concatenate(drain(queue))
    assert np.array_equal(played, np.concatenate(tone_frames(Tone.EMERGENCY)))


def test_emergency_tones_are_at_most_one_per_raiser_and_never_two_waiting() -> None:
    queue = ToneQueue()
    assert queue.add(Tone.EMERGENCY, 0.0, b"A", "carol")
    assert not queue.add(Tone.EMERGENCY, 0.1, b"B", "alice")  # announced by carol's, waiting
    drain(queue)
    # carol raising, cancelling and raising again makes new alerts: still carol, still quiet.
    assert not queue.add(Tone.EMERGENCY, 1.0, b"C", "carol")
    assert not queue.add(Tone.EMERGENCY, 1.0, b"B", "alice")  # announced by carol's tone
    assert queue.add(Tone.EMERGENCY, 1.0, b"D", "dave")  # a new officer is heard at once
    drain(queue)
    # After a long while an officer still in emergency is announced again.
    assert queue.add(Tone.EMERGENCY, ALERT_RETONE_S + 0.1, b"E", "carol")


def test_another_officers_genuine_alert_is_toned_whatever_a_spammer_does() -> None:
    """Issue 9's red team: one gap for all alerts let carol's raise/cancel cycles (a new alert
    a second) keep every other officer's emergency from ever being toned."""
    queue = ToneQueue()
    toned: list[str] = []
    for i in range(120):  # two minutes of carol's cycles, the player draining the queue
        now = i * 1.0
        if queue.add(Tone.EMERGENCY, now, os.urandom(16), "carol"):
            toned.append("carol")
        if i == 37:
            assert queue.add(Tone.EMERGENCY, now + 0.5, os.urandom(16), "alice")
            toned.append("alice")
        drain(queue)
    assert toned.count("alice") == 1
    assert toned.count("carol") == 120 // int(ALERT_RETONE_S)  # bounded: one per 30 s


def test_an_emergency_tone_cut_by_voice_plays_once_after_it() -> None:
    queue = ToneQueue()
    assert queue.add(Tone.EMERGENCY, 0.0, b"A", "alice")  # arrived during a call
    assert queue.give_way_to_voice() == len(tone_frames(Tone.EMERGENCY))
    assert queue.give_way_to_voice() == 0  # the call goes on: nothing plays over it
    assert not queue.add(Tone.EMERGENCY, 0.5, b"B", "dave")  # the owed tone announces dave
    played = drain(queue)  # the call is over
    assert np.array_equal(np.concatenate(played), np.concatenate(tone_frames(Tone.EMERGENCY)))
    assert queue.stats.owed == 1 and drain(queue) == []


def test_floor_tones_make_room_for_an_emergency_tone() -> None:
    queue = ToneQueue()
    while queue.add(Tone.DENY, 0.0):
        pass
    assert queue.add(Tone.EMERGENCY, 0.0, b"A", "alice")
    assert queue.queued_s <= MAX_QUEUED_TONE_S
    assert queue.next_frame() is not None and queue.stats.accepted[Tone.EMERGENCY] == 1


def test_queued_tone_time_is_capped() -> None:
    queue = ToneQueue()
    kinds = [Tone.DENY, Tone.TALK_PERMIT, Tone.ROGER, Tone.EMERGENCY] * 50
    for i, kind in enumerate(kinds):
        queue.add(kind, i * 0.001, os.urandom(16), f"user{i}")
        assert queue.queued_s <= MAX_QUEUED_TONE_S
    assert queue.stats.over_cap > 0
    assert queue.stats.most_queued_s <= MAX_QUEUED_TONE_S
    assert len(drain(queue)) * 0.02 <= MAX_QUEUED_TONE_S


def test_tones_give_way_to_voice_even_half_played() -> None:
    queue = ToneQueue()
    queue.add(Tone.EMERGENCY, 0.0, b"A")
    queue.add(Tone.ROGER, 0.0)
    assert queue.next_frame() is not None
    total = len(tone_frames(Tone.EMERGENCY)) + len(tone_frames(Tone.ROGER))
    assert queue.give_way_to_voice() == total - 1
    assert queue.queued_s == 0 and queue.stats.cut_frames == total - 1
    assert queue.stats.played_frames == 1
    # Once nobody is heard the emergency tone (an alert's only sound) plays again, whole;
    # the roger beep does not.
    assert len(drain(queue)) == len(tone_frames(Tone.EMERGENCY))


def test_a_tone_already_playing_does_not_announce_a_later_officer() -> None:
    queue = ToneQueue()
    assert queue.add(Tone.EMERGENCY, 0.0, b"A", "carol")
    assert queue.next_frame() is not None  # carol's tone has started
    assert queue.add(Tone.EMERGENCY, 0.1, b"B", "alice")  # alice's gets its own, after it
    assert not queue.add(Tone.EMERGENCY, 0.2, b"C", "dave")  # alice's, waiting, covers dave
    assert queue.queued_s <= MAX_QUEUED_TONE_S
    assert len(drain(queue)) == 2 * len(tone_frames(Tone.EMERGENCY)) - 1
