"""Radio tones: distinct in length and pitch, click-free, codec-ready."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ptt_client.tones import (
    TONE_SPECS,
    Tone,
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
