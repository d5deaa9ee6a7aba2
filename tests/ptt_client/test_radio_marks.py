"""ptt-radio's verified mark: shown only while nothing of the burst went unverified or forged."""

from __future__ import annotations

import io

import pytest

from crypto.bundle import CredentialBundle
from crypto.identity import DeviceKeys
from ptt_client import events
from ptt_client.audio import NullOutput
from ptt_client.client import FloorView, RadioClient
from ptt_client.radio import Console, Radio
from tests.ptt_client.test_e2e_promises import _BOB, _CHANNEL, _ROOT


def not_opened() -> object:
    raise AssertionError("no microphone in this test")


@pytest.fixture
async def radio() -> Radio:
    keys, credential = _BOB
    bundle = CredentialBundle(
        device_keys=keys.export(None),
        credential=credential.to_bytes(),
        root_public_key=_ROOT.public_key_bytes(),
        server_url="wss://127.0.0.1:7300",
        tls_fingerprint="0" * 64,
    )
    client = RadioClient(bundle, DeviceKeys.import_(bundle.device_keys))  # never started
    client.channels[_CHANNEL] = "patrol"
    client.affiliated.add(_CHANNEL)
    client.selected = _CHANNEL
    return Radio(
        client,
        open_input=not_opened,  # type: ignore[arg-type]
        output=NullOutput(),
        console=Console(io.StringIO(), live=False),
    )


def hearing(radio: Radio, burst: int) -> None:
    radio.client.floors[_CHANNEL] = FloorView(state="taken", talker="alice", burst_id=burst)


@pytest.mark.parametrize(
    "withdrawn",
    [
        events.TalkerUnverified(_CHANNEL, "alice", 5, "1 frame(s) not covered"),
        events.ForgedAudio(_CHANNEL, "alice", 5, "frames 3 do not match"),
    ],
)
async def test_the_mark_is_withdrawn_for_the_rest_of_the_burst(
    radio: Radio, withdrawn: object
) -> None:
    hearing(radio, 5)
    radio._on_event(events.TalkerVerified(_CHANNEL, "alice", "Alice", 5))
    assert radio.view().verified
    radio._on_event(withdrawn)
    assert not radio.view().verified
    assert "WARNING: audio claimed as alice" in radio.console.out.getvalue()  # type: ignore[attr-defined]
    radio._on_event(events.TalkerVerified(_CHANNEL, "alice", "Alice", 5))  # later frames
    assert not radio.view().verified
    hearing(radio, 6)
    radio._on_event(events.TalkerVerified(_CHANNEL, "alice", "Alice", 6))
    assert radio.view().verified
