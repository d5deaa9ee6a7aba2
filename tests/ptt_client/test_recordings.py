"""Burst files: names a person can find that never leave their directory, and recalled Opus
frames decoded into a WAV file."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptt_client.audio import WavFileInput, load_wav
from ptt_client.codec import OpusEncoder
from ptt_client.recordings import burst_file_name, name_part, write_burst
from ptt_client.samples import sample_paths
from tests.ptt_client.speech import similarity

AT = calendar.timegm((2026, 12, 2, 3, 15, 0))
"""2026-12-02 03:15:00 UTC."""


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """File names are in local time: pin the zone so the expected names are fixed."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_burst_is_named_by_time_channel_and_talker(utc: None) -> None:
    assert burst_file_name(AT, "patrol", "o.martin") == "20261202-031500_patrol_o.martin.wav"
    assert burst_file_name(AT, "patrol", "alice", "recall") == (
        "20261202-031500_patrol_alice_recall.wav"
    )


@pytest.mark.parametrize(
    ("unsafe", "kept"),
    [
        ("../x", "x"),
        ("..", "unknown"),
        ("", "unknown"),
        ("a/b\\c", "a-b-c"),
        ("/etc/passwd", "etc-passwd"),
        (".hidden", "hidden"),
        ("patrol+traffic", "patrol-traffic"),
        ("nul\0byte", "nul-byte"),
        ("Zoé Roux", "Zoé-Roux"),
        ("x" * 300, "x" * 40),
    ],
)
def test_unsafe_characters_are_stripped_from_names(unsafe: str, kept: str) -> None:
    assert name_part(unsafe) == kept


def test_a_talker_named_dot_dot_slash_cannot_leave_the_directory(tmp_path: Path, utc: None) -> None:
    inside = tmp_path / "heard"
    name = burst_file_name(AT, "../../channel", "../x")
    assert name == "20261202-031500_channel_x.wav"
    path, _ = write_burst([], inside, name)
    assert path.parent == inside and path.exists()
    assert [p.name for p in tmp_path.rglob("*.wav")] == [name]


def test_recalled_frames_decode_into_a_file_that_sounds_like_the_talk(tmp_path: Path) -> None:
    sample, other = sample_paths()[0], sample_paths()[1]
    encoder = OpusEncoder()
    with WavFileInput(sample) as source:
        opus = [encoder.encode(frame) for frame in source.frames()]
    # A damaged frame is concealed, so the file keeps the burst's length.
    path, seconds = write_burst([*opus[:10], b"", *opus[11:]], tmp_path, "burst")
    assert path == tmp_path / "burst.wav"
    assert seconds == pytest.approx(len(opus) * 0.020)
    received = load_wav(path)
    same, different = similarity(load_wav(sample), received), similarity(load_wav(other), received)
    assert same > 0.8, same
    assert same > different + 0.3, (same, different)


def test_a_second_burst_of_the_same_name_gets_its_own_file(tmp_path: Path) -> None:
    first, _ = write_burst([], tmp_path, "20261202-031500_patrol_alice.wav")
    second, _ = write_burst([], tmp_path, "20261202-031500_patrol_alice.wav")
    third, _ = write_burst([], tmp_path, "20261202-031500_patrol_alice")
    assert [first.name, second.name, third.name] == [
        "20261202-031500_patrol_alice.wav",
        "20261202-031500_patrol_alice-2.wav",
        "20261202-031500_patrol_alice-3.wav",
    ]
