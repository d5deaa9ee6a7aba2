"""What one voice-bench burst measured, and the figures of a condition (``bench.voice``).

Per condition: percentiles over every burst (or every frame, for mouth-to-ear), mean speech
quality, the frame fates (played, rescued by a repeat, rebuilt by FEC, concealed, missing)
and the talker's wire bitrate (UDP payload bytes it sent during each burst).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.impairment import LinkStats
from bench.speech_quality import speech_quality
from ptt_client.audio import WavFileInput
from ptt_client.codec import Pcm

__all__ = ["FRAME_MS", "Burst", "frames_of", "loss_pct", "mean", "sent_audio", "summarise"]

FRAME_MS: Final = 20


def frames_of(path: Path) -> list[Pcm]:
    """The frames the Transmitter sends for ``path`` (48 kHz, last frame zero-padded)."""
    with WavFileInput(path, FRAME_MS) as source:
        return list(source.frames())


def sent_audio(path: Path) -> Pcm:
    return np.concatenate(frames_of(path))


@dataclass
class Burst:
    """What one transmission of one sample measured."""

    sample: Path
    access_s: float
    mouth_to_ear_s: list[float]
    fates: dict[str, int]
    extra_frames: int
    late_entry_s: float | None
    received: Pcm
    received_sent_only: Pcm
    """``received`` without the frames played for sequence numbers that carried no audio."""
    wire_bytes: int
    """UDP payload bytes the talker sent during the burst (what its uplink carried)."""
    duration_s: float


def loss_pct(stats: LinkStats) -> float:
    return round(100.0 * stats.dropped / stats.received, 2) if stats.received else 0.0


def mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(float(np.mean(known)), 3) if known else None


def _ms(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000.0, 1) if values else None


def summarise(bursts: list[Burst], extra: dict[str, Any]) -> dict[str, Any]:
    """The figures of one condition (see the module docstring)."""
    access = [b.access_s for b in bursts]
    m2e = [t for b in bursts for t in b.mouth_to_ear_s]
    late = [b.late_entry_s for b in bursts if b.late_entry_s is not None]
    quality = [speech_quality(sent_audio(b.sample), b.received) for b in bursts]
    sent_only = [speech_quality(sent_audio(b.sample), b.received_sent_only) for b in bursts]
    fates = {
        k: sum(b.fates[k] for b in bursts) for k in ("play", "repeat", "fec", "plc", "missing")
    }
    kbps = [8 * b.wire_bytes / b.duration_s / 1000 for b in bursts if b.duration_s > 0]
    pesq_values = [q[0] for q in quality if q[0] is not None]
    return {
        "access_time_p95_ms": _ms(access, 95),
        "mouth_to_ear_p95_ms": _ms(m2e, 95),
        "late_entry_p95_ms": _ms(late, 95),
        "pesq_wb": mean([q[0] for q in quality]),
        "stoi": mean([q[1] for q in quality]),
        "wire_kbps_mean": mean(kbps),
        "wire_kbps_p95": round(float(np.percentile(kbps, 95)), 1) if kbps else None,
        "access_time_median_ms": _ms(access, 50),
        "mouth_to_ear_median_ms": _ms(m2e, 50),
        "mouth_to_ear_min_ms": _ms(m2e, 0),
        "mouth_to_ear_max_ms": _ms(m2e, 100),
        "late_entry_median_ms": _ms(late, 50),
        "pesq_wb_min": round(min(pesq_values), 3) if pesq_values else None,
        "stoi_min": round(min(q[1] for q in quality), 3) if quality else None,
        "pesq_wb_without_extra_frames": mean([q[0] for q in sent_only]),
        "stoi_without_extra_frames": mean([q[1] for q in sent_only]),
        "bursts": len(bursts),
        "late_entries_heard": len(late),
        "frames_sent": sum(len(b.mouth_to_ear_s) + b.fates["missing"] for b in bursts),
        "frames_played": fates["play"],
        "frames_rescued_by_repeats": fates["repeat"],
        "frames_fec": fates["fec"],
        "frames_concealed": fates["plc"],
        "frames_missing": fates["missing"],
        "extra_frames": sum(b.extra_frames for b in bursts),
        **extra,
    }
