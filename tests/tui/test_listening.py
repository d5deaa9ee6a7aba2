"""What the console talks from and where it writes what it hears, with and without a sound
card (``tui.listening.plan_audio``: pure, so no device is needed to test it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.listening import AudioPlan, default_listen_dir, default_sample, plan_audio

SAMPLE = Path("/samples/all_clear.wav")
DEFAULT = Path("/state/heard")


def plan(
    *,
    has_input: bool = True,
    has_output: bool = True,
    talk_file: Path | None = None,
    listen_dir: Path | None = None,
    no_audio: bool = False,
) -> AudioPlan:
    return plan_audio(
        talk_file=talk_file,
        listen_dir=listen_dir,
        no_audio=no_audio,
        has_input=has_input,
        has_output=has_output,
        sample=SAMPLE,
        default_dir=DEFAULT,
    )


def test_a_sound_card_and_no_flag_change_nothing() -> None:
    assert plan() == AudioPlan(talk_file=None, speaker=True, listen_dir=None, note=None)


def test_no_sound_card_talks_from_the_sample_and_writes_to_the_default_directory() -> None:
    assert plan(has_input=False, has_output=False) == AudioPlan(
        talk_file=SAMPLE,
        speaker=False,
        listen_dir=DEFAULT,
        note=f"no sound card: talking from sample {SAMPLE}, writing what you hear to {DEFAULT}",
    )


@pytest.mark.parametrize(
    ("has_input", "has_output", "expected"),
    [
        (False, True, AudioPlan(SAMPLE, True, None, f"no microphone: talking from sample {SAMPLE}")),
        (True, False, AudioPlan(None, False, DEFAULT, f"no speaker: writing what you hear to {DEFAULT}")),
    ],
)  # fmt: skip
def test_half_a_sound_card_falls_back_for_the_missing_half(
    has_input: bool, has_output: bool, expected: AudioPlan
) -> None:
    assert plan(has_input=has_input, has_output=has_output) == expected


def test_flags_win_over_the_fallback_and_need_no_excuse() -> None:
    mine, heard = Path("/tmp/me.wav"), Path("/tmp/heard")
    assert plan(has_input=False, has_output=False, talk_file=mine, listen_dir=heard) == AudioPlan(
        mine, False, heard, f"talking from {mine}, writing what you hear to {heard}"
    )
    # Beside a speaker, the listen directory is written and the speaker still plays.
    assert plan(listen_dir=heard) == AudioPlan(
        None, True, heard, f"writing what you hear to {heard} as well"
    )


def test_no_audio_opens_no_device_even_when_there_is_one() -> None:
    assert plan(no_audio=True) == AudioPlan(
        SAMPLE,
        False,
        DEFAULT,
        f"sound card off (--no-audio): talking from sample {SAMPLE},"
        f" writing what you hear to {DEFAULT}",
    )


def test_the_defaults_are_the_bundled_sample_and_a_state_directory() -> None:
    assert default_sample().name == "all_clear.wav" and default_sample().is_file()
    assert default_listen_dir().parts[-2:] == ("fieldradio", "heard")
