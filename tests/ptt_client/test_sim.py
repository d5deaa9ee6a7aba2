"""The officer simulator: its seeded schedule, its arguments, and a short live run."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.identity import DeviceKeys
from ptt_client.sim import PcmInput, SimError, main, parse_args, run_simulation
from ptt_client.sim_schedule import (
    EMERGENCY_TALK_S,
    ScheduledEmergency,
    ScheduledTalk,
    make_schedule,
    positions_for,
)
from ptt_server.server import RelayServer
from tests.orgfixture import Org

OFFICERS = ["officer1", "officer2", "officer3"]
DURATIONS = [2.0, 2.9, 2.4, 3.1]

# --- the schedule ----------------------------------------------------------------------------


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    one = make_schedule(OFFICERS, duration=120, talk_every=10, sample_durations=DURATIONS, seed=7)
    again = make_schedule(OFFICERS, duration=120, talk_every=10, sample_durations=DURATIONS, seed=7)
    other = make_schedule(OFFICERS, duration=120, talk_every=10, sample_durations=DURATIONS, seed=8)
    assert one == again
    assert one != other


def test_calls_fit_the_run_and_an_officer_never_overlaps_itself() -> None:
    schedule = make_schedule(
        OFFICERS, duration=300, talk_every=5, sample_durations=DURATIONS, seed=1
    )
    assert [e.at for e in schedule] == sorted(e.at for e in schedule)
    for officer in OFFICERS:
        talks = [e for e in schedule if isinstance(e, ScheduledTalk) and e.officer == officer]
        assert talks, officer
        for talk in talks:
            assert 0 <= talk.at and talk.at + talk.duration <= 300
            assert talk.duration == DURATIONS[talk.sample]
        for first, second in itertools.pairwise(talks):
            assert second.at >= first.at + first.duration


def test_mean_pause_is_talk_every() -> None:
    # 300 officers x 1 h: the sample mean of the exponential pauses is within a few percent.
    officers = [f"o{i}" for i in range(300)]
    schedule = make_schedule(officers, duration=3600, talk_every=30, sample_durations=[2.0], seed=3)
    pauses = []
    for officer in officers:
        starts = [e.at for e in schedule if e.officer == officer]
        pauses += [b - a - 2.0 for a, b in itertools.pairwise(starts)]
    assert abs(sum(pauses) / len(pauses) - 30) < 1.5


def test_emergency_officer_is_quiet_during_its_emergency_talk() -> None:
    schedule = make_schedule(
        OFFICERS,
        duration=200,
        talk_every=1,
        sample_durations=DURATIONS,
        seed=2,
        emergency=("officer2", 50.0),
    )
    assert [e for e in schedule if isinstance(e, ScheduledEmergency)] == [
        ScheduledEmergency(50.0, "officer2")
    ]
    for event in schedule:
        if isinstance(event, ScheduledTalk) and event.officer == "officer2":
            assert event.at + event.duration <= 50.0 or event.at >= 50.0 + EMERGENCY_TALK_S
    # The others keep talking through it.
    assert any(
        isinstance(e, ScheduledTalk) and e.officer != "officer2" and 50 <= e.at < 60
        for e in schedule
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"duration": 0}, "duration must be a positive"),
        ({"talk_every": float("inf")}, "talk_every must be a positive"),
        ({"sample_durations": []}, "at least one positive duration"),
        ({"emergency": ("nobody", 1.0)}, "'nobody' is not one of the officers"),
        ({"emergency": ("officer1", 60.0)}, "not within the 60 s simulation"),
    ],
)
def test_bad_schedule_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "duration": 60.0,
        "talk_every": 10.0,
        "sample_durations": DURATIONS,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_schedule(OFFICERS, **arguments)  # type: ignore[arg-type]


@settings(max_examples=100)
@given(
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=1, max_value=600),
    st.floats(min_value=0.1, max_value=120),
    st.integers(),
)
def test_any_schedule_is_well_formed(
    count: int, duration: float, talk_every: float, seed: int
) -> None:
    officers = [f"o{i}" for i in range(count)]
    schedule = make_schedule(
        officers, duration=duration, talk_every=talk_every, sample_durations=DURATIONS, seed=seed
    )
    for event in schedule:
        assert isinstance(event, ScheduledTalk)
        assert event.officer in officers
        assert 0 <= event.at <= event.at + event.duration <= duration


def test_positions_are_seeded_and_near_the_centre() -> None:
    assert positions_for(OFFICERS, 1) == positions_for(OFFICERS, 1)
    assert positions_for(OFFICERS, 1) != positions_for(OFFICERS, 2)
    for lat, lon in positions_for(OFFICERS, 1).values():
        assert abs(lat - 48.8566) < 0.02 and abs(lon - 2.3522) < 0.03


def test_pcm_input_frames_and_pads_the_last_one() -> None:
    pcm = np.arange(2000, dtype=np.int16)
    source = PcmInput(pcm, frame_ms=20)
    frames = []
    while (frame := source.read_frame()) is not None:
        frames.append(frame)
    assert [len(f) for f in frames] == [960, 960, 960]
    assert np.array_equal(np.concatenate(frames)[:2000], pcm)
    assert not frames[-1][80:].any()


# --- arguments -------------------------------------------------------------------------------


def _bundle_dir(tmp_path: Path, count: int) -> Path:
    directory = tmp_path / "bundles"
    directory.mkdir()
    for i in range(1, count + 1):
        (directory / f"officer{i}.bundle").write_bytes(b"")
    return directory


def test_arguments_pick_the_first_bundles_in_natural_order(tmp_path: Path) -> None:
    directory = _bundle_dir(tmp_path, 12)
    options = parse_args(
        [
            "--bundles", str(directory), "--officers", "10", "--channel", "patrol",
            "--duration", "30", "--talk-every", "5", "--emergency", "officer3", "12.5",
            "--seed", "4", "--no-udp",
        ]
    )  # fmt: skip
    assert [p.name for p in options.bundles] == [f"officer{i}.bundle" for i in range(1, 11)]
    assert options.channel == "patrol"
    assert (options.duration, options.talk_every, options.seed) == (30.0, 5.0, 4)
    assert options.emergency == ("officer3", 12.5)
    assert options.use_udp is False
    defaults = parse_args(["--bundles", str(directory), "--officers", "1", "--channel", "p"])
    assert (defaults.duration, defaults.talk_every, defaults.emergency) == (60.0, 20.0, None)
    assert defaults.server is None and defaults.use_udp


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--officers", "2", "--channel", "p"], "the following arguments are required: --bundles"),
        (["--officers", "0", "--channel", "p"], "--officers 0: at least 1"),
        (["--officers", "4", "--channel", "p"], "only 3 *.bundle files"),
        (["--officers", "2", "--channel", "p", "--duration", "-1"], "'-1' must be more than 0"),
        (["--officers", "2", "--channel", "p", "--talk-every", "x"], "'x' is not a number"),
        (
            ["--officers", "2", "--channel", "p", "--emergency", "officer1", "soon"],
            "AT must be seconds",
        ),
        (
            ["--officers", "2", "--channel", "p", "--duration", "10", "--emergency", "o", "10"],
            "AT must be within the 10 s run",
        ),
        (["--officers", "2", "--channel", "p", "--frame-ms", "30"], "invalid choice: 30"),
    ],
)
def test_argument_errors(tmp_path: Path, argv: list[str], message: str) -> None:
    directory = _bundle_dir(tmp_path, 3)
    if "--bundles" not in argv and "required" not in message:
        argv = ["--bundles", str(directory), *argv]
    with pytest.raises(SimError) as caught:
        parse_args(argv)
    assert message in str(caught.value)


def test_bundles_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(SimError, match="is not a directory"):
        parse_args(["--bundles", str(tmp_path / "none"), "--officers", "1", "--channel", "p"])


# --- a short live run ------------------------------------------------------------------------


async def test_three_officers_talk_and_one_raises_an_emergency(
    org: Org, server: RelayServer
) -> None:
    credentials = []
    for user in ("alice", "bob", "carol"):
        bundle = org.bundle(user, server)
        credentials.append((bundle, DeviceKeys.import_(bundle.device_keys)))
    progress: list[str] = []
    async with asyncio.timeout(60):
        report = await run_simulation(
            credentials,
            "patrol",
            duration=4.0,
            talk_every=1.0,
            emergency=("carol", 0.5),
            emergency_talk_s=1.5,
            seed=5,
            on_progress=progress.append,
        )
    assert set(report.officers) == {"alice", "bob", "carol"}
    talks = [e for e in report.schedule if isinstance(e, ScheduledTalk)]
    assert talks and all(e.officer != "carol" for e in talks)
    carol = report.officers["carol"]
    # Carol's emergency call pre-empts whoever talks and gets the floor at emergency priority.
    assert carol.outcomes["granted"] == 1, carol
    assert 60 <= carol.frames_sent <= 75  # 1.5 s of 20 ms frames
    for user in ("alice", "bob"):
        officer = report.officers[user]
        assert officer.emergencies_seen == 1
        assert officer.frames_heard >= carol.frames_sent * 0.9
        assert officer.frames_rejected == 0
    assert any("EMERGENCY carol" in line for line in progress)
    assert "3 officers" in report.summary()


def test_main_reports_a_bad_bundle_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = _bundle_dir(tmp_path, 2)
    code = main(["--bundles", str(directory), "--officers", "2", "--channel", "patrol"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(
        f"ptt-sim: {directory / 'officer1.bundle'}: not a Fieldradio device bundle (the file is"
        " empty)"
    )
