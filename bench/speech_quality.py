"""Speech quality of received audio against what was sent: PESQ-WB (ITU-T P.862.2) and STOI
(Taal et al. 2011), after cross-correlation alignment, at 16 kHz. Used by ``bench.voice``."""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
from pesq import PesqError, pesq  # type: ignore[import-untyped]
from pystoi import stoi  # type: ignore[import-untyped]
from scipy.signal import resample_poly  # type: ignore[import-untyped]  # comes with pystoi

from ptt_client.codec import SAMPLE_RATE, Pcm

__all__ = ["MAX_ALIGN_S", "QUALITY_RATE", "align", "speech_quality"]

QUALITY_RATE: Final = 16_000
"""PESQ wideband (P.862.2) works at 16 kHz; STOI is computed at the same rate."""
MAX_ALIGN_S: Final = 0.3
"""Largest delay the alignment looks for between sent and received speech."""

Floats = npt.NDArray[np.float64]


def align(reference: Pcm, received: Pcm, max_lag: int) -> tuple[int, Floats]:
    """Shift ``received`` so it best matches ``reference`` (cross-correlation, |lag| <= max_lag).

    Returns ``(lag, aligned)``: ``received[lag + i]`` matches ``reference[i]``; ``aligned`` is
    as long as ``reference`` (zero-padded where ``received`` has nothing).
    """
    ref = np.asarray(reference, dtype=np.float64)
    rec = np.asarray(received, dtype=np.float64)
    if len(ref) == 0 or len(rec) == 0:
        return 0, np.zeros(len(ref))
    n = 1 << (len(ref) + len(rec) - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(rec, n) * np.conj(np.fft.rfft(ref, n)), n)
    lags = np.arange(-max_lag, max_lag + 1)
    best = int(lags[np.argmax(corr[lags % n])])  # negative lags sit at the end (circular)
    aligned = np.zeros(len(ref))
    start, stop = max(0, -best), min(len(ref), len(rec) - best)
    if stop > start:
        aligned[start:stop] = rec[start + best : stop + best]
    return best, aligned


def _to_quality_rate(samples: npt.ArrayLike) -> Floats:
    x = np.asarray(samples, dtype=np.float64) / 32768.0
    return np.asarray(resample_poly(x, QUALITY_RATE, SAMPLE_RATE), dtype=np.float64)


def speech_quality(reference: Pcm, received: Pcm) -> tuple[float | None, float]:
    """(PESQ-WB MOS-LQO or None when PESQ finds no speech, STOI) of ``received``."""
    _, aligned = align(reference, received, int(MAX_ALIGN_S * SAMPLE_RATE))
    ref, deg = _to_quality_rate(reference), _to_quality_rate(aligned)
    try:
        mos: float | None = float(pesq(QUALITY_RATE, ref, deg, "wb"))
    except PesqError:
        mos = None
    return mos, float(stoi(ref, deg, QUALITY_RATE, extended=False))
