"""Comparing speech signals in tests: time alignment and a similarity score.

Voice that went through Opus, a jitter buffer, loss concealment and resampling is delayed and
no longer sample-identical to what was said, so the end-to-end tests compare it this way:

- :func:`align` finds the delay by cross-correlation and undoes it;
- :func:`similarity` compares the aligned signals' log band-energy spectrograms (what a listener
  hears: which sounds come when), giving ~1 for the same speech and ~0 for different speech.

All functions take 1-D arrays of samples (any numeric dtype) at the same rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

Signal = npt.NDArray[np.generic]
Floats = npt.NDArray[np.float64]


def _floats(x: Signal) -> Floats:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError("signals must be non-empty 1-D arrays of samples")
    return a


def cross_correlation_lag(reference: Signal, received: Signal, max_lag: int | None = None) -> int:
    """Return the lag ``k`` maximising ``sum(reference[i] * received[i + k])``.

    Positive ``k``: ``received`` lags behind ``reference`` by ``k`` samples. ``max_lag``
    limits the search to ``|k| <= max_lag``.
    """
    ref, rec = _floats(reference), _floats(received)
    n = 1 << (len(ref) + len(rec) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)
    # corr[k] holds lag k for k >= 0 and lag k - n for the wrapped negative lags.
    lags = np.concatenate([np.arange(0, len(rec)), np.arange(-(len(ref) - 1), 0)])
    values = np.concatenate([corr[: len(rec)], corr[n - (len(ref) - 1) :]])
    if max_lag is not None:
        keep = np.abs(lags) <= max_lag
        lags, values = lags[keep], values[keep]
    return int(lags[np.argmax(values)])


def align(reference: Signal, received: Signal, max_lag: int | None = None) -> tuple[int, Floats]:
    """Undo the delay of ``received`` relative to ``reference``.

    Returns ``(offset, aligned)``: ``received[offset + i]`` best matches ``reference[i]``, and
    ``aligned`` is ``received`` shifted by ``offset`` and cut or zero-padded to the length of
    ``reference``.
    """
    ref, rec = _floats(reference), _floats(received)
    offset = cross_correlation_lag(ref, rec, max_lag)
    aligned = np.zeros(len(ref), dtype=np.float64)
    start = max(0, -offset)  # first reference index that has a received sample
    stop = min(len(ref), len(rec) - offset)
    if stop > start:
        aligned[start:stop] = rec[start + offset : stop + offset]
    return offset, aligned


def band_energies(
    signal: Signal,
    rate: int = 48_000,
    bands: int = 24,
    low_hz: float = 100.0,
    high_hz: float = 7_000.0,
) -> Floats:
    """Log energy (dB) in ``bands`` log-spaced bands, 20 ms Hann frames every 10 ms.

    Returns an array of shape ``(frames, bands)``.
    """
    x = _floats(signal)
    size, hop = rate // 50, rate // 100
    if len(x) < size:
        x = np.concatenate([x, np.zeros(size - len(x))])
    count = 1 + (len(x) - size) // hop
    index = np.arange(size)[None, :] + hop * np.arange(count)[:, None]
    spectra = np.abs(np.fft.rfft(x[index] * np.hanning(size), axis=1)) ** 2
    freqs = np.fft.rfftfreq(size, 1 / rate)
    edges = np.geomspace(low_hz, min(high_hz, rate / 2), bands + 1)
    which = np.digitize(freqs, edges) - 1  # band of each FFT bin, -1/bands outside
    energy = np.zeros((count, bands))
    for b in range(bands):
        cols = which == b
        if cols.any():
            energy[:, b] = spectra[:, cols].sum(axis=1)
    return 10 * np.log10(energy + 1e-12)


def similarity(reference: Signal, received: Signal, rate: int = 48_000) -> float:
    """Score how alike two recordings of speech sound, from -1 to 1 (1: same speech).

    ``received`` is aligned to ``reference`` first. The score is the correlation of their
    log band-energy spectrograms, each band centred on its mean over time (so a different
    microphone or codec colouring does not count) and floored 50 dB below the reference's
    loudest cell (so background hiss in pauses does not count).
    """
    ref = _floats(reference)
    _, aligned = align(ref, received)
    a, b = band_energies(ref, rate), band_energies(aligned, rate)
    floor = a.max() - 50.0
    a, b = np.maximum(a, floor), np.maximum(b, floor)
    a -= a.mean(axis=0)
    b -= b.mean(axis=0)
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denominator == 0.0:
        return 0.0
    return float((a * b).sum() / denominator)


def snr_db(reference: Signal, received: Signal) -> float:
    """Signal-to-noise ratio of ``received`` against ``reference`` (same length), in dB.

    0 dB is what silence scores; higher is closer.
    """
    ref, rec = _floats(reference), _floats(received)
    if len(ref) != len(rec):
        raise ValueError(f"snr_db needs equal lengths, got {len(ref)} and {len(rec)}")
    noise = float(((ref - rec) ** 2).sum())
    signal = float((ref**2).sum())
    if noise == 0.0:
        return float("inf")
    return float(10 * np.log10(max(signal, 1e-12) / noise))


def long_recording(path: Path, seconds: float) -> Path:
    """A WAV at ``path`` of at least ``seconds``: the speech samples one after another, as
    often as needed (a talker who is still talking when something happens to the floor)."""
    from ptt_client.audio import WavFileOutput, load_wav
    from ptt_client.samples import sample_paths

    out = WavFileOutput(path)
    written = 0.0
    while written < seconds:
        for sample in sample_paths():
            pcm = load_wav(sample)
            out.write(pcm)
            written += len(pcm) / 48_000
    out.close()
    return path
