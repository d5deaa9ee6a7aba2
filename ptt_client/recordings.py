"""Bursts kept as WAV files: a file name a person can find, and a recalled burst decoded to one.

A burst's file is named after when it started, its channel and its talker, e.g.
``20261202-031500_patrol_o.martin.wav`` (local time, to the second). Channel and talker names
come from the network, so only letters, digits, ``-``, ``_`` and ``.`` are kept (no path
separator, no leading dot): a name can never leave the directory it is written to.
:class:`~ptt_client.audio.WavDirectoryOutput` never overwrites a file, so two bursts in the same
second get ``-2``, ``-3``...
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ptt_client.audio import WavDirectoryOutput
from ptt_client.codec import SAMPLE_RATE, OpusDecoder

NAME_PART_MAX: Final = 40
"""Characters kept of a channel or talker name (file systems limit a name to 255 bytes)."""


def name_part(text: str) -> str:
    """``text`` made safe as one part of a file name: ``"../x"`` -> ``"x"``, ``""`` -> ``"unknown"``."""
    kept = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    # No leading dot (a hidden file, or ".." pieces) and no dangling separators.
    return kept.strip(".-_")[:NAME_PART_MAX].strip(".-_") or "unknown"


def burst_file_name(at: float, channel: str, talker: str, suffix: str = "") -> str:
    """``YYYYmmdd-HHMMSS_channel_talker[_suffix].wav`` for a burst that started at ``at`` (Unix
    time, written in local time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(at))
    parts = [stamp, name_part(channel), name_part(talker)]
    if suffix:
        parts.append(name_part(suffix))
    return "_".join(parts) + ".wav"


def write_burst(opus: Sequence[bytes], directory: Path, name: str) -> tuple[Path, float]:
    """Decode Opus frames (in order) into ``directory/name``; returns the file and its seconds.

    A frame that does not decode is concealed, as live playback and replay do, so the file
    keeps the burst's length. Raises :class:`~ptt_client.audio.AudioError` when the file
    cannot be written.
    """
    sink = WavDirectoryOutput(directory)
    decoder = OpusDecoder()
    samples = 0
    path = sink.start_burst(name)
    try:
        for packet in opus:
            try:
                pcm = decoder.decode(packet)
            except ValueError:
                pcm = decoder.conceal()
            sink.write(pcm)
            samples += len(pcm)
    finally:
        sink.end_burst()
    return path, samples / SAMPLE_RATE
