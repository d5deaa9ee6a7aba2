"""``python -m bench.resample``: every figure is reported, and the meters catch bad resamplers.

The bench's verdict is only as good as its meters, so each meter is pointed at a resampler with
a known flaw (sample-and-hold images, a fixed delay, state lost between chunks) and must see it.

Every check here is a correctness property, so all of it runs in ``make test``: the quality,
delay and streaming figures are computed from samples, not clocks, and the timed figures
(``first_read_ms``, ``cpu_ms_per_s``) are only checked to be present, never bounded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from bench.resample import RATES, latency, quality, streaming
from ptt_client.audio import StreamResampler
from tests.bench.quick import quick_report

Floats = npt.NDArray[np.float64]
FIGURES = (
    "passband_ripple_db",
    "flat_to_hz",
    "minus3db_hz",
    "spurious_db",
    "edge_rejection_db",
    "snr_db",
    "group_delay_samples",
    "lookahead_ms",
    "first_output_ms",
    "first_read_ms",
    "first_read_frames",
    "cpu_ms_per_s",
    "cpu_ms_per_s_reads",
    "stream_max_abs_diff",
    "length_error_samples",
    "flush_samples",
)


class SampleAndHold:
    """Each output repeats the latest input sample: strong images, a drooping passband."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._in, self._out = in_rate, out_rate
        self._x = np.zeros(0)
        self._n = 0

    def process(self, samples: Floats) -> Floats:
        self._x = np.concatenate([self._x, samples])
        end = -(-len(self._x) * self._out // self._in)
        n = np.arange(self._n, end)
        self._n = end
        out: Floats = self._x[n * self._in // self._out]
        return out

    def flush(self) -> Floats:
        return np.zeros(0)


class Delayed:
    """libsoxr with 7 extra output samples of silence in front: late by exactly 7 samples."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._inner = StreamResampler(in_rate, out_rate)
        self._pad: Floats | None = np.zeros(7)

    def process(self, samples: Floats) -> Floats:
        out = self._inner.process(samples)
        if self._pad is not None:
            out, self._pad = np.concatenate([self._pad, out]), None
        return out

    def flush(self) -> Floats:
        return self._inner.flush()


class Forgetful:
    """A fresh libsoxr stream for every chunk: fine in one shot, wrong when streamed."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self._rates = (in_rate, out_rate)

    def process(self, samples: Floats) -> Floats:
        one = StreamResampler(*self._rates)
        return np.concatenate([one.process(samples), one.flush()])

    def flush(self) -> Floats:
        return np.zeros(0)


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return quick_report("bench.resample", timeout=110)


@pytest.mark.timeout(120)
def test_every_conversion_reports_every_figure_for_both(report: dict[str, Any]) -> None:
    assert set(report["conversions"]) == {f"{rate}_to_48000" for rate in RATES}
    for conv, figures in report["conversions"].items():
        for name in ("sinc", "soxr"):
            for figure in FIGURES:
                assert isinstance(figures[f"{name}_{figure}"], float), (conv, name, figure)
            # Both contenders are time-aligned and stream exactly as they convert in one shot.
            assert abs(figures[f"{name}_group_delay_samples"]) < 0.01, (conv, figures)
            assert figures[f"{name}_stream_max_abs_diff"] < 1e-9, (conv, figures)
            assert abs(figures[f"{name}_length_error_samples"]) <= 1, (conv, figures)
            assert figures[f"{name}_first_read_frames"] >= 960, (conv, figures)
        downsampling = conv.startswith("96000")
        assert (figures["sinc_alias_db"] is None) is not downsampling
    speech = report["speech"]
    assert {k.split("_", 1)[0] for k in speech} == {"sinc", "soxr"}
    assert all(isinstance(v, float) and v > 0 for v in speech.values()), speech
    verdict = report["verdict"]
    assert verdict["switch"] == (
        verdict["soxr_quality_matches_or_beats_sinc"] and verdict["soxr_latency_acceptable"]
    )
    assert verdict["soxr_quality_matches_or_beats_sinc"] == (not verdict["quality_checks_failed"])


def figures(measured: dict[str, float | None]) -> dict[str, float]:
    return {k: v for k, v in measured.items() if v is not None}


def test_the_quality_meters_see_sample_and_hold_images_and_droop() -> None:
    bad = figures(quality(SampleAndHold, 8_000, quick=True))
    good = figures(quality(StreamResampler, 8_000, quick=True))
    # sin(pi f / fs) / (pi f / fs) at 3.4 kHz of 8 kHz: -2.7 dB; the images of a 50 Hz tone add up to -3 dB.
    assert bad["passband_ripple_db"] > 2.5 > good["passband_ripple_db"]
    assert bad["spurious_db"] > -20 > -120 > good["spurious_db"]
    assert bad["snr_db"] < 30 < 80 < good["snr_db"]


def test_the_latency_meters_see_a_fixed_delay() -> None:
    late = quality(Delayed, 16_000, quick=True)
    on_time = quality(StreamResampler, 16_000, quick=True)
    assert late["group_delay_samples"] == pytest.approx(7, abs=0.01)
    assert on_time["group_delay_samples"] == pytest.approx(0, abs=0.01)
    # Prepending output makes it run ahead of the input, so less is held back.
    ahead, normal = latency(Delayed, 16_000, 1), latency(StreamResampler, 16_000, 1)
    assert ahead["lookahead_ms"] == pytest.approx(normal["lookahead_ms"] - 7 / 48, abs=1e-9)


def test_the_streaming_meter_sees_state_lost_between_chunks() -> None:
    assert streaming("forgetful", Forgetful, 44_100)["stream_max_abs_diff"] > 1e-3
    assert streaming("soxr", StreamResampler, 44_100)["stream_max_abs_diff"] < 1e-9
