"""ptt-radio's verified mark: shown only while nothing of the burst went unverified or forged."""

from __future__ import annotations

import io

import pytest

from ptt_client import events
from ptt_client.audio import NullOutput
from ptt_client.client import FloorView, RadioClient
from ptt_client.radio import Console, Radio
from tests.credentials import bundle_for
from tests.ptt_client.keyring_org import BOB, CHANNEL, ROOT


def not_opened() -> object:
    raise AssertionError("no microphone in this test")


@pytest.fixture
async def radio() -> Radio:
    client = RadioClient(bundle_for(ROOT, BOB), BOB[0])  # never started
    client.channels[CHANNEL] = "patrol"
    client.affiliated.add(CHANNEL)
    client.selected = CHANNEL
    return Radio(
        client,
        open_input=not_opened,  # type: ignore[arg-type]
        output=NullOutput(),
        console=Console(io.StringIO(), live=False),
    )


def hearing(radio: Radio, burst: int) -> None:
    radio.client.floors[CHANNEL] = FloorView(state="taken", talker="alice", burst_id=burst)


@pytest.mark.parametrize(
    "withdrawn",
    [
        events.TalkerUnverified(CHANNEL, "alice", 5, "1 frame(s) not covered"),
        events.ForgedAudio(CHANNEL, "alice", 5, "frames 3 do not match"),
    ],
)
async def test_the_mark_is_withdrawn_for_the_rest_of_the_burst(
    radio: Radio, withdrawn: object
) -> None:
    hearing(radio, 5)
    radio._on_event(events.TalkerVerified(CHANNEL, "alice", "Alice", 5))
    assert radio.view().verified
    radio._on_event(withdrawn)
    assert not radio.view().verified
    assert "WARNING: audio claimed as alice" in radio.console.out.getvalue()  # type: ignore[attr-defined]
    radio._on_event(events.TalkerVerified(CHANNEL, "alice", "Alice", 5))  # later frames
    assert not radio.view().verified
    hearing(radio, 6)
    radio._on_event(events.TalkerVerified(CHANNEL, "alice", "Alice", 6))
    assert radio.view().verified
